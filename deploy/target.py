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
    def platform(self) -> dict:
        """{"system", "arch"} from `uname`: the interface's own answer to "what board is this".
        preflight.probe asks the same (and much more) in its one shell round trip instead."""
        ...
    def close(self) -> None: ...


def relay_line(line: str) -> None:
    """Pass one line of the board's stderr through, ending it so our next line starts fresh."""
    sys.stderr.write(line if line.endswith("\n") else line + "\n")
    sys.stderr.flush()


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
        out: list[str] = []
        err: list[str] = []

        def read_stdout():
            out.append(proc.stdout.read())

        def read_stderr():
            for line in proc.stderr:
                err.append(line)
                if stream:
                    relay_line(line)

        # one owner per pipe: each reader thread has its own, this thread only writes stdin
        readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
        for r in readers:
            r.start()
        try:
            if stdin:
                proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:       # the command exited without reading its input
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise DeployError(f"local: command timed out after {timeout:.0f}s: {command[:80]}",
                              kind="timeout") from None
        for r in readers:
            r.join(10)      # a background child still holding the pipes must not hang us
        return RunResult(proc.returncode, "".join(out), "".join(err))

    def put(self, local: Path, remote: str) -> None:
        try:
            shutil.copyfile(local, remote)
        except OSError as e:
            raise DeployError(f"local: copy of {Path(local).name} to {remote} failed: "
                              f"{e.strerror or e}") from None

    def get(self, remote: str, local: Path) -> None:
        try:
            shutil.copyfile(remote, local)
        except OSError as e:
            raise DeployError(f"local: copy of {remote} failed: {e.strerror or e}") from None

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
