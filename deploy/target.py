"""The one interface everything above deploy/ talks to: a board that can run, put, get.

Two implementations: `LocalTarget` (HOST=local, this machine acts as the board) and
`SSHTarget` (deploy.ssh_target). Callers never ask which one they have.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deploy.errors import DeployError

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

    def run(self, command: str, *, timeout: float | None = None, stream: bool = False,
            stdin: str | None = None) -> RunResult: ...
    def put(self, local: Path, remote: str) -> None: ...
    def get(self, remote: str, local: Path) -> None: ...
    def platform(self) -> dict: ...
    def close(self) -> None: ...


def platform_of(target: Target) -> dict:
    """`uname` on the board; shared by both targets so both report the same way."""
    res = target.run("uname -s -m", timeout=30)
    if not res.ok:
        raise DeployError(f"{target.name}: `uname` failed: {res.stderr.strip()}")
    system, machine = res.stdout.split()[:2]
    return {"system": system, "arch": machine}


class LocalTarget:
    """This machine as a board. Commands run under /bin/sh exactly as they would over SSH."""

    name = "local"

    def run(self, command: str, *, timeout: float | None = None, stream: bool = False,
            stdin: str | None = None) -> RunResult:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        err_lines: list[str] = []

        def tee_stderr():
            for line in proc.stderr:
                err_lines.append(line)
                if stream:
                    sys.stderr.write(line)
                    sys.stderr.flush()

        reader = threading.Thread(target=tee_stderr, daemon=True)
        reader.start()
        try:
            out, _ = proc.communicate(stdin or "", timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise DeployError(f"local: command timed out after {timeout:.0f}s: {command[:80]}")
        reader.join(5)
        return RunResult(proc.returncode, out, "".join(err_lines))

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def platform(self) -> dict:
        return platform_of(self)

    def close(self) -> None:
        pass


def open_target(spec: str, *, ssh_key: str | None = None, trust_new_host: bool = False) -> Target:
    """`local` -> LocalTarget; anything else (user@host:port, name, ssh-config alias) -> SSHTarget."""
    if spec == "local":
        return LocalTarget()
    from deploy.ssh_target import SSHTarget   # paramiko/fabric only when a real board is used
    return SSHTarget(spec, ssh_key=ssh_key, trust_new_host=trust_new_host)
