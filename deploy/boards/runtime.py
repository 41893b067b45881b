"""The runtime on the board: which one, and installing it into <board home>/venv. What the agent
needs to run a model, so a failed install fails the deploy: the TFLite runtime (RUNTIMES, one per
board, always) and any runtime added beside it with RUNTIMES= (ADDED_RUNTIMES: ONNX Runtime). The
optional extras (Pillow, OpenCV: skipped where the board has no wheels) are deploy/boards/extras.py;
both install through deploy/boards/pip.py.

ai-edge-litert where it has wheels (aarch64/x86_64, Python 3.10-3.13), else tflite-runtime 2.14
with numpy<2 (needs glibc >= 2.34). The venv sees the board's own NumPy when that one is usable
(saves a big download on a Pi). A new venv is built beside the old one and swapped in only
when it imports, so a failed install leaves the previous runtime working.
"""
from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.version import Version

from deploy.boards import extras, pip, preflight
from deploy.boards.preflight import Board
from deploy.errors import DeployError, UsageError
from deploy.targets.base import Target


@dataclass(frozen=True)
class Runtime:
    """A runtime deploy can install on a board; the first in RUNTIMES that fits a board wins."""
    name: str                      # the pip distribution, as profiles name it
    module: str                    # what the agent imports (device/runtimes/registry.py knows it by this name)
    requirements_file: str         # device/<file>: the pins shipped to the board
    arches: tuple[str, ...]
    pythons: tuple[tuple[int, int], ...]
    min_glibc: tuple[int, int] = (0, 0)
    numpy_below: str = "3"         # the board's own NumPy is reused only when older than this

    @property
    def requirements(self) -> list[str]:
        return [pin for pin, _ in pip.pins(self.requirements_file)]

    @property
    def pin(self) -> str:
        return next(r for r in self.requirements if Requirement(r).name == self.name)

    def fits(self, board: Board) -> bool:
        return (board.arch in self.arches and board.python[:2] in self.pythons
                and (board.glibc or (0, 0)) >= self.min_glibc)

    def describe(self) -> str:
        pys = f"{'.'.join(map(str, self.pythons[0]))}-{'.'.join(map(str, self.pythons[-1]))}"
        glibc = f" + glibc >= {'.'.join(map(str, self.min_glibc))}" if self.min_glibc > (0, 0) else ""
        return f"{self.name}: {'/'.join(self.arches)} + Python {pys}{glibc}"


# In order of preference. ai-edge-litert hands INT8 graphs to XNNPACK; tflite-runtime 2.14 is the
# fallback for boards it has no wheels for (armv7l, Python 3.9) and needs numpy<2.
RUNTIMES = (
    Runtime("ai-edge-litert", "ai_edge_litert", "requirements.txt", ("aarch64", "x86_64"),
            ((3, 10), (3, 11), (3, 12), (3, 13))),
    Runtime("tflite-runtime", "tflite_runtime", "requirements-fallback.txt", ("aarch64", "armv7l", "x86_64"),
            ((3, 9), (3, 10), (3, 11)), min_glibc=(2, 34), numpy_below="2"),
)
NAMES = tuple(r.name for r in RUNTIMES)
# Runtimes added beside the TFLite one, into the same venv, only when asked for (RUNTIMES=).
ADDED_RUNTIMES = (
    Runtime("onnxruntime", "onnxruntime", "requirements-onnxruntime.txt", ("aarch64", "x86_64"),
            ((3, 11), (3, 12), (3, 13), (3, 14)), min_glibc=(2, 28)),
)
# What RUNTIMES= may name: an added runtime, or the TFLite runtime the profile picks (always installed).
TFLITE_NAMES = ("litert", "tflite") + NAMES + tuple(r.module for r in RUNTIMES)


def parse_runtimes(text: str | None) -> tuple[str, ...]:
    """RUNTIMES=litert,onnxruntime (or RUNTIME=onnxruntime) as names; an unknown one is bad input,
    refused before any board is contacted. Empty: the TFLite runtime only."""
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    added = [r.name for r in ADDED_RUNTIMES]
    for name in names:
        if name not in added and name not in TFLITE_NAMES:
            raise UsageError(f"unknown runtime {name!r} in RUNTIMES= (choose from litert, {', '.join(added)})")
    return names


def added_for(names: tuple[str, ...], board: Board) -> list[Runtime]:
    """The added runtimes `names` asks for; one this board cannot run is refused in one line
    before anything on the board changes."""
    wanted = [r for r in ADDED_RUNTIMES if r.name in names]
    for added in wanted:
        if not added.fits(board):
            raise DeployError(_refused(added, board, []).replace(
                "; this board has no supported TFLite runtime", f"; deploy without {added.name} in RUNTIMES="))
    return wanted


def choose(board: Board, prefer: str | None = None) -> Runtime:
    """The profile's runtime when it fits the board, else the first one that does; a profile
    asking for one that cannot fit is refused before anything on the board changes."""
    fitting = [r for r in RUNTIMES if r.fits(board)]
    wanted = next((r for r in RUNTIMES if r.name == prefer), None)
    if wanted and wanted not in fitting:
        raise DeployError(_refused(wanted, board, fitting))
    for r in fitting:
        if r.name == prefer:
            return r
    if fitting:
        return fitting[0]
    glibc = ".".join(map(str, board.glibc)) if board.glibc else "unknown"
    raise DeployError(f"no TFLite runtime for {board.arch} / Python {board.py_tag} / glibc {glibc} "
                      f"({'; '.join(r.describe() for r in RUNTIMES)})")


def _refused(wanted: Runtime, board: Board, fitting: list[Runtime]) -> str:
    """One line: why the profile's runtime cannot work on this board, and what to use instead."""
    name = wanted.pin.replace("==", " ")
    if board.python[:2] not in wanted.pythons:
        why = (f"{name} has no wheels for Python {board.py_tag} (only "
               f"{', '.join('%d.%d' % v for v in wanted.pythons)})")
    elif board.arch not in wanted.arches:
        why = f"{name} has no wheels for {board.arch}"
    else:
        why = f"{name} needs glibc >= {'.'.join(map(str, wanted.min_glibc))}"
    instead = (f"use `runtime: {fitting[0].name}` (or auto) in the profile" if fitting
               else "this board has no supported TFLite runtime")
    return f"runtime {wanted.name} refused: {why}; {instead}"


def board_numpy_usable(board: Board, runtime: Runtime) -> bool:
    """True when the board's own NumPy works with the runtime (then the venv reuses it)."""
    try:
        have = Version(board.numpy)
    except Exception:
        return False
    return Version("1.23.2") <= have < Version(runtime.numpy_below)


def marker(runtime: Runtime, board: Board, system_numpy: bool, added: tuple = (),
           optional: list | None = None) -> str:
    """What a venv was built for; written into it, so a re-deploy can tell it needs nothing.
    optional: the extras.Extra a deploy installs (default: those that are not opt-in)."""
    optional = extras.chosen() if optional is None else optional
    reqs = runtime.requirements + [r for a in added for r in a.requirements] + [e.pin for e in optional]
    digest = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:8]
    pins = " + ".join([runtime.pin] + [a.pin for a in added])
    return f"{pins} py{board.py_tag} {'system-numpy' if system_numpy else 'own-numpy'} {digest}"


def needs_install(board: Board, runtime: Runtime, added: tuple = (), optional: list | None = None) -> bool:
    return board.installed_runtime != marker(runtime, board, board_numpy_usable(board, runtime), tuple(added),
                                             optional)


def ensure(target: Target, board: Board, runtime: Runtime, *, force_wheelhouse: bool = False,
           log=print, added: tuple = (), optional: list | None = None) -> dict:
    """Install the runtime (and the added runtimes asked for, in the same venv), then the optional
    extras, unless the board already has exactly these. Returns what was done."""
    added = tuple(added)
    optional = extras.chosen() if optional is None else optional
    system_numpy = board_numpy_usable(board, runtime)
    want = marker(runtime, board, system_numpy, added, optional)
    pins = " + ".join([runtime.pin] + [a.pin for a in added])
    if board.installed_runtime == want:
        return {"runtime": pins, "installed": False, "bytes_sent": 0, "via": "already"}
    reqs = [r for r in runtime.requirements + [x for a in added for x in a.requirements]
            if not (system_numpy and Requirement(r).name == "numpy")]
    home = board.home
    q = shlex.quote
    venv_new = f"{home}/venv.new"
    board.online = preflight.can_reach_index(target)
    offline = force_wheelhouse or not board.online
    numpy_note = (f", board numpy {board.numpy}" if system_numpy else
                  f", own {_numpy_pin(runtime)} in the venv: the board's NumPy {board.numpy} does not "
                  f"work with {runtime.name}" if board.numpy else "")
    log(f"{target.name}: installing {pins}{', extras ' if optional else ''}{' + '.join(e.pin for e in optional)} "
        f"({'wheelhouse' if offline else 'from the index'}{numpy_note})")
    steps = [f"mkdir -p {q(home)}", f"rm -rf {q(venv_new)}",
             f"python3 -m venv {'--system-site-packages ' if system_numpy else ''}{q(venv_new)}"]
    res = target.run(" && ".join(steps), timeout=300)
    if not res.ok:
        raise DeployError(f"{target.name}: cannot create a venv ({pip.last_line(res.stderr)}); "
                          "install python3-venv on the board")
    try:
        sent = pip.install(target, board, venv_new, reqs, offline=offline,
                           board_numpy=board.numpy if system_numpy else None)
    except pip.PipFailed as e:
        target.run(f"rm -rf {q(venv_new)}", timeout=120)
        raise DeployError(f"{target.name}: cannot install {pins}: {e}") from None
    venv_numpy = board.numpy if system_numpy else _exact(_numpy_pin(runtime))
    done, extras_sent = extras.install(target, board, venv_new, offline=offline, log=log, wanted=optional,
                                       venv_numpy=venv_numpy)
    modules = "".join(f", {a.module}" for a in added)
    check = (f"{q(venv_new)}/bin/python -c 'import numpy, {runtime.module}.interpreter{modules}; "
             f"print(numpy.__version__)'")
    res = target.run(check, timeout=120)
    if not res.ok:
        target.run(f"rm -rf {q(venv_new)}", timeout=120)
        raise DeployError(f"{target.name}: {pins} installed but does not import: {pip.last_line(res.stderr)}")
    numpy_version = res.stdout.strip()
    swap = (f"printf '%s\\n' {q(want)} > {q(venv_new)}/edgekit-runtime && "
            f"rm -rf {q(home)}/venv.old && {{ [ ! -e {q(home)}/venv ] || mv {q(home)}/venv {q(home)}/venv.old; }} && "
            f"mv {q(venv_new)} {q(home)}/venv && rm -rf {q(home)}/venv.old")
    res = target.run(swap, timeout=300)
    if not res.ok:
        raise DeployError(f"{target.name}: cannot switch to the new runtime venv: {pip.last_line(res.stderr)}")
    return {"runtime": pins, "numpy": numpy_version, "installed": True, "bytes_sent": sent + extras_sent,
            "via": "wheelhouse" if offline else "index", "optional": done}


def _numpy_pin(runtime: Runtime) -> str:
    return next((r for r in runtime.requirements if Requirement(r).name == "numpy"), "numpy")


def _exact(pin: str) -> str | None:
    """"numpy==1.26.4" -> "1.26.4"; a range ("numpy<2") -> None."""
    specs = list(Requirement(pin).specifier)
    return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None
