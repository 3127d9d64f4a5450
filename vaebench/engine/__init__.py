"""One run: train, then evaluate into one row."""
