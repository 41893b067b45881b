"""pip on the board: pinned requirements into a venv there, from the package index or, where the
board cannot reach it (or FORCE_WHEELHOUSE), from a wheelhouse the host builds for the board and
ships. The one place that builds pip's command line, for both kinds of package deploy installs:
the runtime (deploy/boards/runtime.py: required, a failure fails the deploy) and the optional
extras (deploy/boards/extras.py: best effort, a failure is one line).
"""
from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

from deploy import settings
from deploy.boards import wheelhouse
from deploy.boards.preflight import Board
from deploy.errors import DeployError
from deploy.targets.base import Target


class PipFailed(DeployError):
    """pip ran on the board and failed; the message is the last line it printed."""


def pins(file: str) -> list[tuple[str, str]]:
    """device/<file>'s requirements in order, each with what its line says after `#`."""
    out = []
    for line in (settings.DEVICE_DIR / file).read_text().splitlines():
        pin, _, why = line.partition("#")
        if pin.strip():
            out.append((pin.strip(), why.strip()))
    return out


def install(target: Target, board: Board, venv: str, requirements: list[str], *, offline: bool,
            board_numpy: str | None = None, wheels_only: bool = False, timeout: float = 1800) -> int:
    """pip-install `requirements` into `venv` on the board; returns the bytes of wheels shipped.

    With `board_numpy` (the venv sees the board's own NumPy) pip resolves against that NumPy and
    the wheelhouse carries none. `wheels_only`: never build from source on the board (a wheelhouse
    holds only wheels anyway); a package without a wheel for the board then fails in seconds
    instead of compiling for hours. A wheelhouse that cannot be built raises DeployError before the
    board is touched; pip failing on the board raises PipFailed."""
    q = shlex.quote
    pip = f"{q(venv)}/bin/python -m pip install -q --disable-pip-version-check"
    if wheels_only:
        pip += " --only-binary=:all:"
    sent = 0
    if offline:
        house = wheelhouse.build(requirements, arch=board.arch, glibc=board.glibc, python=board.python[:2],
                                 board_numpy=board_numpy)
        remote = f"{board.home}/wheelhouse/{house.name}"
        sent = wheelhouse.ship(target, house, remote)
        cmd = f"{pip} --no-index --find-links {q(remote)} -r {q(remote + '/requirements.txt')}"
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            # keep the board's NumPy: pip then picks dependency versions that work with it
            f.write("\n".join(requirements + ([f"numpy=={board_numpy}"] if board_numpy else [])) + "\n")
        remote_req = f"{board.home}/requirements.runtime.txt"
        try:
            target.put(Path(f.name), remote_req)
        finally:
            Path(f.name).unlink()
        cmd = f"{pip} -r {q(remote_req)}"
    res = target.run(cmd, timeout=timeout)
    if not res.ok:
        raise PipFailed(last_line(res.stderr))
    return sent


def last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"
