"""The single-file agent (agent.pyz) shipped with every release.

Built by device's own builder (`python -m device.build OUT.pyz`) and cached by a hash of
device/'s sources: the same sources give the very same file, so a re-deploy sends nothing.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from deploy.errors import DeployError
from deploy.settings import REPO, cache_dir


def _sources_digest(device_dir: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(device_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            h.update(str(path.relative_to(device_dir)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def build_agent(explicit: str | None = None) -> Path:
    """Use --agent PATH if given, else build (or reuse) agent.pyz from this checkout's device/."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise DeployError(f"agent {explicit} not found")
        return path
    device_dir = REPO / "device"
    if not (device_dir / "build.py").is_file():
        raise DeployError("device/build.py is missing: cannot build agent.pyz (pass --agent PATH)")
    out = cache_dir() / "agent" / f"agent-{_sources_digest(device_dir)}.pyz"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    res = subprocess.run([sys.executable, "-m", "device.build", str(tmp)], cwd=REPO,
                         capture_output=True, text=True)
    if res.returncode != 0 or not tmp.is_file():
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"building agent.pyz failed: {tail}")
    os.replace(tmp, out)
    return out
