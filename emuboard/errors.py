"""The one error the board tool raises on purpose: printed as one line, exit status 1."""


class BoardError(Exception):
    pass
