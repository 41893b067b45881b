"""Boards as targets: run a command, put a file (local, SSH), host keys."""
