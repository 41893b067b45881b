"""What the frame pipeline measured: per frame the capture->result latency and the time of each
stage, per run the counts (frames, dropped, corrupt, failed), fps, CPU and memory. Percentiles
come from the last WINDOW frames (a long-running serve stays bounded); the Prometheus histograms
of /metrics count every frame."""
from __future__ import annotations

import collections
import os
import threading
import time
from typing import Optional

import numpy as np

from device.measure import memory

# capture_wait: the main path waiting for a frame; decode: reading + decoding it (capture thread);
# draw: drawing the answer, encoding and writing the sinks (JSON line, recording, MJPEG).
STAGES = ("capture_wait", "decode", "preprocess", "invoke", "postprocess", "draw")
SERIAL = ("decode", "preprocess", "invoke", "postprocess", "draw")   # the work one frame needs
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WINDOW = 10000


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _pcts(values) -> dict:
    if not values:
        return {"p50": None, "p99": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
            "mean": round(float(arr.mean()), 3)}


class Stats:
    """Counters and timings, safe to read from other threads (serve's page and /metrics)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = {"frames": 0, "dropped": 0, "corrupt": 0, "failed": 0}
        self.stages = {s: collections.deque(maxlen=WINDOW) for s in STAGES}
        self.latency: collections.deque = collections.deque(maxlen=WINDOW)
        self.hist = {s: [0] * (len(BUCKETS) + 1) for s in STAGES + ("latency",)}
        self.sums = {s: 0.0 for s in STAGES + ("latency",)}
        self.recent: collections.deque = collections.deque(maxlen=30)    # finish times: the current fps
        self.started = self.first = self.last = None
        self.cpu0 = _cpu_seconds()

    def start(self) -> None:
        self.started, self.cpu0 = time.perf_counter(), _cpu_seconds()

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def _observe(self, name: str, seconds: float) -> None:
        i = next((j for j, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))
        self.hist[name][i] += 1
        self.sums[name] += seconds

    def frame(self, stages: dict, latency: float) -> None:
        """One frame answered: its stage times and capture->result latency, in seconds."""
        now = time.perf_counter()
        with self.lock:
            self.counts["frames"] += 1
            for s in STAGES:
                self.stages[s].append(stages.get(s, 0.0))
                self._observe(s, stages.get(s, 0.0))
            self.latency.append(latency)
            self._observe("latency", latency)
            self.recent.append(now)
            self.first = self.first or now
            self.last = now

    def current_fps(self) -> Optional[float]:
        with self.lock:
            if len(self.recent) < 2:
                return None
            return round((len(self.recent) - 1) / max(1e-9, self.recent[-1] - self.recent[0]), 2)

    def summary(self, facts: Optional[dict] = None) -> dict:
        """The run's figures: counts, fps over the run, latency and stage percentiles (ms), the
        pipeline's overhead over the serial sum of its stages, CPU and memory."""
        with self.lock:
            counts = dict(self.counts)
            stages = {s: list(v) for s, v in self.stages.items()}
            latency = list(self.latency)
            start, end = self.started, self.last or time.perf_counter()
        frames = counts["frames"]
        wall = max(1e-9, end - start) if start else None
        split = {s: _pcts(v) for s, v in stages.items()}
        serial = sum(split[s]["mean"] or 0.0 for s in SERIAL)
        per_frame = 1000.0 * wall / frames if frames and wall else None
        cpu = _cpu_seconds() - self.cpu0
        out = dict(counts, seconds=round(wall, 3) if wall else None,
                   fps=round(frames / wall, 2) if frames and wall else None,
                   latency_ms=_pcts(latency), stages_ms=split,
                   frame_ms=round(per_frame, 3) if per_frame else None,
                   overhead=round(per_frame / serial - 1.0, 4) if per_frame and serial else None,
                   cpu_seconds=round(cpu, 3), cpu_percent=round(100.0 * cpu / wall, 1) if wall else None,
                   rss_mb=memory.rss_mb(), peak_rss_mb=memory.peak_rss_mb())
        if facts:
            out["source"] = dict(facts)
        return out

    def histograms(self) -> tuple:
        """(counts, bucket counts per stage, sums per stage): a copy for /metrics."""
        with self.lock:
            return dict(self.counts), {k: list(v) for k, v in self.hist.items()}, dict(self.sums)


def end_to_end_line(e: dict) -> str:
    """One bench --source entry for people: fps, latency, drops, the stage split, CPU and RSS."""
    split = ", ".join(f"{k} {v['mean']}" for k, v in e["stages_ms"].items() if v.get("mean") is not None)
    lat = e["latency_ms"]
    return (f"end to end, {e['threads']} thread(s): {e['fps']} fps over {e['frames']} frames, latency p50 "
            f"{lat['p50']} / p99 {lat['p99']} ms, dropped {e['dropped']}, CPU {e['cpu_percent']} %, RSS "
            f"{e['rss_mb']} MB; stage means ms: {split}")
