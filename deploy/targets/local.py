"""HOST=local: this machine as the board. Commands run under /bin/sh exactly as they would over SSH."""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from deploy.errors import DeployError
from deploy.targets.base import RunResult, relay_line


class LocalTarget:
    """This machine as a board. Commands run under /bin/sh exactly as they would over SSH."""

    name = "local"
    local = True           # profiles.pick: this machine is its own profile

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


    def close(self) -> None:
        pass
