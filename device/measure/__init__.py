"""Measuring one model: the timing loop in a fresh child, statistics, memory, the board's facts."""
