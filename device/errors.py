"""The one exception type the agent turns into a one-line message and an exit code, and how the
process ends with that code."""
from __future__ import annotations

import os
import sys

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


def exit_process(code: int) -> None:
    """End the process with `code`, skipping the interpreter's teardown when nothing is left to
    run at exit (one thread, no atexit callback: logging, weakref finalizers and coverage register
    one). Freeing NumPy and the agent's modules took ~17 ms of every one-shot command here, after
    the answer was already written; anything that asked to run at exit gets the normal sys.exit."""
    import atexit
    import threading
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):   # a closed or broken stream: the normal exit reports it
        sys.exit(code)
    pending = getattr(atexit, "_ncallbacks", lambda: 1)()
    if pending == 0 and threading.active_count() == 1:
        os._exit(code)
    sys.exit(code)
