"""The one exception deploy/ raises for anything the user can fix; __main__ prints it as one line."""


class DeployError(Exception):
    """A clear, one-line reason why a step cannot go on (never a traceback for the user).

    `kind` says what went wrong where it matters to the caller (bench records a failed model's
    error kind): "timeout", "transport" (the link to the board) or "crash" (the agent gave no
    usable result); empty otherwise."""

    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind
