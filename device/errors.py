"""The one exception type the agent turns into a one-line message and an exit code."""
from __future__ import annotations

# The exit codes of every edgekit command (host, deploy, device, emuboard), said once here:
EXIT_OK = 0           # everything asked for was done
EXIT_FAILED = 1       # something failed: a model, a board, a budget, a regression
EXIT_USAGE = 2        # usage or bad input: nothing was attempted
EXIT_MODEL_FAILED = EXIT_FAILED


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


def error_line(prog: str, message: object) -> str:
    """`prog: error: message` as one line: the form of every error an edgekit command prints."""
    return f"{prog}: error: {' '.join(str(message).split())}"
