"""The exceptions host/ raises for anything the user can fix; host/__main__.py prints them as one line.

Two kinds, as in deploy/ and device/: a usage error (bad input: nothing was attempted, exit 2) and
a failure (something was tried and did not work: a model, a board, a budget, exit 1). Older host
modules raise their own types (DatasetError, ModelError, ...); host/__main__.py's one table says
which kind each of those is.
"""
from __future__ import annotations

from device.errors import EXIT_FAILED, EXIT_USAGE

EXIT_INTERRUPTED = 130      # Ctrl-C: what was finished is kept, nothing half-written


class HostError(Exception):
    """Something was tried and failed (one line, never a traceback): exit 1."""

    exit_code = EXIT_FAILED


class UsageError(HostError):
    """Bad input (a flag value, a missing file, an unknown name): exit 2, nothing was attempted."""

    exit_code = EXIT_USAGE


class Interrupted(HostError):
    """Ctrl-C; the message says what was kept."""

    exit_code = EXIT_INTERRUPTED
