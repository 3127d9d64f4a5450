"""The sweep spec: sections, grid, search."""
