"""Reading a bundle's manifest.json on the board (docs/contracts.md has its fields).

Its own module, stdlib only, so the agent's parent process (which only starts a child per model)
reads the manifest without importing NumPy: that import is most of a cold start.
"""
from __future__ import annotations

import json
from typing import Optional

from device.errors import AgentError


def load_manifest(path: Optional[str]) -> Optional[dict]:
    """The bundle's manifest.json (it carries the preprocessing), or None without a path."""
    if not path:
        return None
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise AgentError(f"{path}: cannot read manifest ({exc})", kind="manifest") from None
    if not isinstance(manifest, dict) or not ("input" in manifest or "variants" in manifest):
        raise AgentError(f"{path}: not an edgekit bundle manifest (no 'input')", kind="manifest")
    return manifest
