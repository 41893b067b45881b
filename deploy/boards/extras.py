"""Optional extras: packages in the board's venv beside the runtime (Pillow, OpenCV), installed
where the board has wheels for them, skipped with one line where it has not (the agent then says
which command needs the package). A missing extra never fails a deploy: the runtime alone measures
every model. What the runtime itself needs (and a deploy fails without) is deploy/boards/runtime.py.

The table is device/requirements-extras.txt: one pin per line with what needs it after `#`. An
extra whose line says `# opt-in:` is too big to put on every board (OpenCV: a 29.5 MB aarch64
wheel, 77 MB installed) and is installed only where deploy is asked for it (EXTRAS=name,...).
"""
from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.boards import pip
from deploy.boards.preflight import Board
from deploy.errors import DeployError, UsageError
from deploy.targets.base import Target

EXTRAS_FILE = "requirements-extras.txt"
OPT_IN = "opt-in:"


@dataclass(frozen=True)
class Extra:
    pin: str                # "pillow==13.0.0"
    why: str                # what on the board needs it
    opt_in: bool = False    # installed only when EXTRAS= names it

    @property
    def name(self) -> str:
        return Requirement(self.pin).name


def extras() -> list[Extra]:
    """The extras file's entries, in order."""
    out = []
    for pin, why in pip.pins(EXTRAS_FILE):
        opt_in = why.startswith(OPT_IN)
        out.append(Extra(pin, why[len(OPT_IN):].strip() if opt_in else why, opt_in))
    return out


def parse_extras(text: str | None) -> tuple[str, ...]:
    """EXTRAS=opencv-python-headless as names; one that is not an opt-in extra is bad input,
    refused before any board is contacted."""
    names = tuple(canonicalize_name(n.strip()) for n in (text or "").split(",") if n.strip())
    opt_in = [e.name for e in extras() if e.opt_in]
    for name in names:
        if name not in map(canonicalize_name, opt_in):
            raise UsageError(f"unknown extra {name!r} in EXTRAS= (choose from {', '.join(opt_in)})")
    return names


def chosen(names: tuple[str, ...] = ()) -> list[Extra]:
    """What a deploy installs: every extra that is not opt-in, and the opt-in ones `names` asks for."""
    return [e for e in extras() if not e.opt_in or canonicalize_name(e.name) in names]


def install(target: Target, board: Board, venv: str, *, offline: bool, log=print,
            wanted: list[Extra] | None = None, venv_numpy: str | None = None) -> tuple[dict[str, str], int]:
    """pip-install each extra into `venv` on the board, one at a time so one without wheels for
    this board does not keep the others out. Returns ({name: version or 'skipped: why'}, bytes of
    wheels shipped).
    `venv_numpy` (the NumPy the runtime installed) stays: pip resolves an extra that needs NumPy
    (OpenCV) against it and the wheelhouse carries no second NumPy."""
    done: dict[str, str] = {}
    sent = 0
    for extra in chosen() if wanted is None else wanted:
        try:
            sent += pip.install(target, board, venv, [extra.pin], offline=offline, board_numpy=venv_numpy,
                                wheels_only=True, timeout=900)
        except DeployError as e:
            done[extra.name] = f"skipped: {e}"
            log(f"{target.name}: {extra.pin} not installed ({extra.why} will not work there): {e}")
            continue
        done[extra.name] = str(Requirement(extra.pin).specifier).lstrip("=")
    return done, sent
