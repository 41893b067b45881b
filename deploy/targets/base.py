"""The one interface everything above deploy/ talks to: a board that can run commands and take files.

Implementations: `LocalTarget` (deploy/targets/local.py, HOST=local: this machine acts as the
board) and `SSHTarget` (deploy/targets/ssh.py). `deploy.targets.registry.open_target` is the one place that
maps a board spec to one of them; callers never ask which one they have.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


# On the board, edgekit's directory: $EDGEKIT_HOME if the board's environment sets it, else ~/.edgekit.
BOARD_HOME_SH = '"${EDGEKIT_HOME:-$HOME/.edgekit}"'


@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0


class Target(Protocol):
    name: str          # how results/<name>/ and messages refer to this board
    local: bool        # True only for this machine (HOST=local): it picks the `local` profile

    def run(self, command: str, *, timeout: float | None = None, stream: bool = False,
            stdin: str | None = None) -> RunResult: ...
    def put(self, local: Path, remote: str) -> None: ...
    def close(self) -> None: ...


def relay_line(line: str) -> None:
    """Pass one line of the board's stderr through, ending it so our next line starts fresh."""
    sys.stderr.write(line if line.endswith("\n") else line + "\n")
    sys.stderr.flush()
