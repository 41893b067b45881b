"""Measuring on deployed boards: bench, operator profile, the stored results and their table."""
