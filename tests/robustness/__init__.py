"""Robustness suite: seeded mutations of every format, each case in a capped subprocess."""
