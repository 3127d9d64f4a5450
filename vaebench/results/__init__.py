"""Results: rows and their files."""
