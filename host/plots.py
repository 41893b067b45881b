"""The one way host/ writes a matplotlib figure: headless, atomically, then closed."""
from __future__ import annotations

import io
from pathlib import Path

from device.contract.fileio import atomic_write_bytes


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a workstation over SSH or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 100) -> str:
    """Write `fig` to `path` (a reader never sees half a PNG) and free it; returns the file name."""
    plt = pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path).name
