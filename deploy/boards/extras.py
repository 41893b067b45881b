"""Optional extras: packages in the board's venv beside the runtime (Pillow, ...), installed where
the board has wheels for them, skipped with one line where it has not (the agent then says which
command needs the package). A missing extra never fails a deploy: the runtime alone measures every
model. What the runtime itself needs (and a deploy fails without) is deploy/boards/runtime.py.

The table is device/requirements-extras.txt: one pin per line with what needs it after `#`.
"""
from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement

from deploy.boards import pip
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


def extras() -> list[Extra]:
    """The extras file's entries, in order."""
    return [Extra(pin, why) for pin, why in pip.pins(EXTRAS_FILE)]


def install(target: Target, board: Board, venv: str, *, offline: bool, log=print,
            wanted: list[Extra] | None = None) -> dict[str, str]:
    """pip-install each extra into `venv` on the board, one at a time so one without wheels for
    this board does not keep the others out. Returns {name: version or 'skipped: why'}."""
    done: dict[str, str] = {}
    for extra in extras() if wanted is None else wanted:
        try:
            pip.install(target, board, venv, [extra.pin], offline=offline, timeout=900)
        except DeployError as e:
            done[extra.name] = f"skipped: {e}"
            log(f"{target.name}: {extra.pin} not installed ({extra.why} will not work there): {e}")
            continue
        done[extra.name] = str(Requirement(extra.pin).specifier).lstrip("=")
    return done
