"""Optional packages in the board's venv, beside the runtime: installed where the board has
wheels for them, skipped with one line where it has not (the agent then says which command
needs the package). A missing extra never fails a deploy: the runtime alone measures every model.

The pins live in device/requirements-extras.txt, one per line with what needs it after `#`.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from deploy import settings
from deploy.boards import wheelhouse
from deploy.boards.preflight import Board
from deploy.errors import DeployError
from deploy.targets.base import Target

EXTRAS_FILE = "requirements-extras.txt"


@dataclass(frozen=True)
class Extra:
    pin: str        # "pillow==13.0.0"
    why: str        # what on the board needs it

    @property
    def name(self) -> str:
        return Requirement(self.pin).name


def extras(path: Path | None = None) -> list[Extra]:
    """The extras file's entries, in order."""
    out = []
    for line in (path or settings.DEVICE_DIR / EXTRAS_FILE).read_text().splitlines():
        pin, _, why = line.partition("#")
        if pin.strip():
            out.append(Extra(pin.strip(), why.strip()))
    return out


def install(target: Target, board: Board, venv: str, *, offline: bool, log=print,
            wanted: list[Extra] | None = None) -> dict[str, str]:
    """pip-install each extra into `venv` on the board, one at a time so one without wheels for
    this board does not keep the others out. Returns {name: version or 'skipped: why'}."""
    q = shlex.quote
    pip = f"{q(venv)}/bin/python -m pip install -q --disable-pip-version-check"
    done: dict[str, str] = {}
    for extra in extras() if wanted is None else wanted:
        try:
            if offline:
                house = wheelhouse.build([extra.pin], arch=board.arch, glibc=board.glibc,
                                         python=board.python[:2])
                remote = f"{board.home}/wheelhouse/{house.name}"
                wheelhouse.ship(target, house, remote)
                cmd = f"{pip} --no-index --find-links {q(remote)} {q(extra.pin)}"
            else:
                cmd = f"{pip} {q(extra.pin)}"
            res = target.run(cmd, timeout=900)
            if not res.ok:
                raise DeployError(_last(res.stderr))
        except DeployError as e:
            done[extra.name] = f"skipped: {e}"
            log(f"{target.name}: {extra.pin} not installed ({extra.why} will not work there): {e}")
            continue
        done[extra.name] = str(Requirement(extra.pin).specifier).lstrip("=")
    return done


def _last(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"
