"""Reports from result rows."""
