"""A runtime venv for HOST=local in tests, made in a second instead of a pip install.

deploy's runtime install builds <EDGEKIT_HOME>/venv from the package index; the tests instead make
a pip-less venv that sees this interpreter's site-packages (which hold the pinned ai-edge-litert
and NumPy) and write the marker deploy writes, so deploy finds the runtime already installed.
"""
from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path


def make_local_runtime(edgekit_home: Path) -> Path:
    from deploy.boards import preflight, runtime
    from deploy.targets.local import LocalTarget

    venv = edgekit_home / "venv"
    if not (venv / "edgekit-runtime").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        [lib] = (venv / "lib").glob("python3*")
        (lib / "site-packages" / "edgekit-test.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        board = preflight.probe(LocalTarget())
        rt = runtime.choose(board)
        (venv / "edgekit-runtime").write_text(runtime.marker(rt, board, runtime.board_numpy_usable(board, rt)) + "\n")
    return venv
