"""Contracts the board and the workstation share: results, bench parameters, preprocessing, atomic files."""
