"""The one exception type the agent turns into a one-line message and an exit code."""
from __future__ import annotations

EXIT_OK = 0
EXIT_MODEL_FAILED = 1
EXIT_USAGE = 2


class AgentError(Exception):
    """A problem the user can fix (bad file, bad flag); printed as one line, never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_MODEL_FAILED, kind: str = "error"):
        super().__init__(message)
        self.exit_code = exit_code
        self.kind = kind


def one_line(exc: BaseException) -> str:
    """An exception as one short line: runtimes put newlines (and C++ logs) in their messages."""
    text = " ".join(str(exc).split())
    return text[:400] if text else type(exc).__name__
