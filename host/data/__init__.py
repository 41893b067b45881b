"""Data: the built-in datasets and a user's own labels, calibration and evaluation sets."""
