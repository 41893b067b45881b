"""Emulated aarch64 boards for the end-to-end tests, always torn down (also when a test fails).

Two suites: trixie (Debian 13, today's Raspberry Pi OS: Python 3.13, NumPy 2) gets the full flow;
bookworm (Debian 12, the Pi OS still in the field: Python 3.11, NumPy 1.24) a reduced one (board,
deploy + eval, the tflite-runtime fallback, which has no Python 3.13 wheels). The first use of a
suite builds its root filesystem (~6 min each, cached under ~/.cache/edgekit/board/); later
sessions start a board in seconds. Needs root, as CI is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from emuboard import board as boards
from emuboard.errors import BoardError
from emuboard.image import DEFAULT_SUITE

REPO = Path(__file__).resolve().parents[2]
# The first test to touch a suite's board may build its image (~6 min on 2 cores, 20+ when shared).
BUILD_TIMEOUT_S = 2400


def unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the emulated board needs Linux (network namespaces, overlayfs, binfmt_misc)"
    if os.geteuid() != 0:
        return "the emulated board needs root (network namespaces, mounts, chroot)"
    if not shutil.which("apt-get") and not Path("/usr/bin/qemu-aarch64-static").exists():
        return "the emulated board needs qemu-user (apt-get is not available to install it)"
    return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


@contextlib.contextmanager
def private_home():
    """An EDGEKIT_HOME of the tests' own (never the user's ~/.edgekit), outside pytest's shared
    temp tree: that one is pruned by other pytest runs, and board overlays are mounted in here."""
    home = Path(tempfile.mkdtemp(prefix="edgekit-e2e-"))
    try:
        yield home
    finally:
        _teardown(home)
        if str(home) not in Path("/proc/mounts").read_text():
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def board_home():
    with private_home() as home:
        yield home


def _start(home: Path, offline: bool, count: int = 1, suite: str = DEFAULT_SUITE) -> list[boards.Board]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    try:
        return boards.start(count, offline=offline, home=home, suite=suite, log=_log)
    except BoardError as exc:
        pytest.fail(f"could not start the emulated board: {exc}", pytrace=False)


def _teardown(home: Path, only: list[boards.Board] | None = None) -> None:
    names = {b.name for b in only} if only is not None else None
    for b in boards.load_boards(home):
        if names is None or b.name in names:
            boards.teardown(b, home)


def _one_board(board_home, **kind):
    """Start one board of this kind for the session; tear it down however the tests end."""
    started: list[boards.Board] = []
    try:
        started = _start(board_home, **kind)
        yield started[0]
    finally:
        _teardown(board_home, started)


@pytest.fixture(scope="session")
def board(board_home):
    """One online board (reaches the package index through the relay, nothing else)."""
    yield from _one_board(board_home, offline=False)


@pytest.fixture(scope="session")
def offline_board(board_home):
    """One board with no route to any package index."""
    yield from _one_board(board_home, offline=True)


@pytest.fixture(scope="session")
def bookworm_board(board_home):
    """One online Debian 12 board: the Raspberry Pi OS generation still in the field."""
    yield from _one_board(board_home, offline=False, suite="bookworm")


# What each suite's board must be: the Debian release, its Python and NumPy, glibc.
SUITE_FACTS = {"trixie": {"os_version": "13", "py": [3, 13], "numpy_major": "2", "glibc": "2.41"},
               "bookworm": {"os_version": "12", "py": [3, 11], "numpy_major": "1", "glibc": "2.36"}}


def ssh(board: boards.Board, home: Path, command: str, timeout: float = 300,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run `command` on the board over real OpenSSH, with the pinned host key."""
    proc = subprocess.run(board.ssh_argv(home / "known_hosts") + [command],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {board.name} {command!r} -> {proc.returncode}: "
                             f"{proc.stderr.strip()[-500:]}")
    return proc


def deploy_env(home: Path) -> dict:
    env = dict(os.environ, EDGEKIT_HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", CI="1")
    env.pop("TRUST_NEW_HOST", None)
    return env
