"""The one exception deploy/ raises for anything the user can fix; __main__ prints it as one line."""


class DeployError(Exception):
    """A clear, one-line reason why a step cannot go on (never a traceback for the user)."""
