"""Every default deploy/ uses, in one place, so a reader can see (and a test can change) them."""
from __future__ import annotations

import os
from pathlib import Path

CONNECT_TIMEOUT_S = 10          # bounded: an unreachable board fails in seconds, not minutes
MIN_PYTHON = (3, 9)             # oldest board Python any of our runtimes supports
MIN_FREE_MB = 200               # refuse before touching a board with less room than a runtime needs
SUPPORTED_ARCHES = ("aarch64", "armv7l", "x86_64")        # runtimes per arch: deploy/boards/runtime.py

REPO = Path(__file__).resolve().parent.parent
DEVICE_DIR = REPO / "device"
PROFILES_DIR = REPO / "profiles"


def edgekit_home() -> Path:
    """Where this machine keeps its own board state (HOST=local) and extra ssh config/known_hosts."""
    return Path(os.environ.get("EDGEKIT_HOME") or Path.home() / ".edgekit").expanduser()


def cache_dir() -> Path:
    """Host-side cache (wheelhouses); EDGEKIT_CACHE lets tests and CI share one across runs."""
    default = Path.home() / ".cache" / "edgekit"
    return Path(os.environ.get("EDGEKIT_CACHE") or default).expanduser()


def results_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_RESULTS") or "results")


def deploy_log() -> Path:
    return edgekit_home() / "deploy.log"


def connect_timeout() -> float:
    return float(os.environ.get("EDGEKIT_CONNECT_TIMEOUT") or CONNECT_TIMEOUT_S)


def quiet() -> bool:
    """The workstation's one quiet switch: progress bars and streamed chatter off under CI
    (or with EDGEKIT_QUIET=1). The board side has its own (device.report.progress_wanted)."""
    return bool(os.environ.get("CI")) or bool(os.environ.get("EDGEKIT_QUIET"))


def bars_off() -> bool | None:
    """tqdm's `disable`: True when quiet, None (= only on a terminal) otherwise, so logs stay clean."""
    return True if quiet() else None
