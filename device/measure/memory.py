"""Resident memory of this process, from /proc (Linux) or getrusage elsewhere."""
from __future__ import annotations

import sys
from typing import Optional


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> Optional[float]:
    kb = _status_kb("VmRSS")
    return round(kb / 1024.0, 2) if kb is not None else None


def peak_rss_mb() -> Optional[float]:
    """The high-water mark: VmHWM, else ru_maxrss (kB on Linux, bytes on macOS)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        try:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kb = peak // 1024 if sys.platform == "darwin" else peak
        except (ImportError, OSError):
            return None
    return round(kb / 1024.0, 2)
