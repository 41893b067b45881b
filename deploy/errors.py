"""The exceptions deploy/ raises for anything the user can fix; __main__ prints them as one line."""
from __future__ import annotations

from device.errors import EXIT_FAILED, EXIT_USAGE


class DeployError(Exception):
    """A clear, one-line reason why a step cannot go on (never a traceback for the user).

    `kind` says what went wrong where it matters to the caller (bench records a failed model's
    error kind): "timeout", "transport" (the link to the board) or "crash" (the agent gave no
    usable result); empty otherwise."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind


class UsageError(DeployError):
    """Bad input (a missing bundle, a malformed host, an unknown profile): exit 2, nothing was tried."""

    exit_code = EXIT_USAGE
