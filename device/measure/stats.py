"""Latency statistics over raw per-invoke samples, in microseconds."""
from __future__ import annotations

import math

import numpy as np


def summarize(samples_us: list) -> dict:
    """count, mean, std, min, p50/p90/p95/p99, max and throughput (inferences per second)."""
    if not samples_us:
        return {"count": 0}
    a = np.asarray(samples_us, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    mean = float(a.mean())
    return {
        "count": int(a.size),
        "mean_us": _r(mean),
        "std_us": _r(float(a.std())),
        "min_us": _r(float(a.min())),
        "p50_us": _r(p50),
        "p90_us": _r(p90),
        "p95_us": _r(p95),
        "p99_us": _r(p99),
        "max_us": _r(float(a.max())),
        "throughput_ips": _r(1e6 / mean) if mean > 0 else None,
    }


def _r(x: float) -> float:
    x = float(x)
    return round(x, 3) if math.isfinite(x) else 0.0
