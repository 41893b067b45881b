"""`make perf` step: the frame pipeline end to end (`infer --source video:CLIP`) on a generated
640 x 480 clip, for the default model and for the YOLO-style detector of the post-processing step:
frames per second, capture->result latency p50/p99, the stage split, and two overheads of the
pipeline over its stages (target <= 10 %):

- `overhead`: wall time per frame over the serial sum of the work one frame needs (decode,
  preprocess, invoke, post-process, draw) minus 1; the capture thread decoding the next frame while
  the model runs makes it negative when decoding is a large share;
- `main_path_overhead`: wall time per frame over what the main path measured in its stages
  (capture wait, preprocess, invoke, post-process, draw) minus 1: the bookkeeping, the hand-over
  between threads and the JSON lines, which no stage accounts for.

The clip is read as fast as it decodes (no frame dropped); every figure comes from the agent's
own summary line, the agent running as a separate process as on a board.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

TARGET_OVERHEAD = 0.10
SIZE = (640, 480)
FRAMES = 300
MAIN = ("capture_wait", "preprocess", "invoke", "postprocess", "draw")


def write_clip(path: Path, frames: int = FRAMES, size: tuple = SIZE) -> Path:
    """Moving shapes over a noisy background, MPEG-4 at 30 fps: decoding costs what a camera's does."""
    import cv2
    w, h = size
    rng = np.random.default_rng(1)
    background = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for i in range(frames):
        f = background.copy()
        cv2.rectangle(f, ((7 * i) % (w - 120), 60), ((7 * i) % (w - 120) + 120, 220), (0, 0, 255), -1)
        cv2.circle(f, (w // 2, (5 * i) % h), 50, (0, 255, 0), -1)
        out.write(f)
    out.release()
    return path


def _summary(model: Path, clip: Path, env: dict) -> dict:
    """One run; the JSON lines go to a file (a pipe would add this process's reading to the figures)."""
    lines = clip.with_suffix(".jsonl")
    proc = subprocess.run([sys.executable, "-m", "device", "infer", str(model), "--source", f"video:{clip}",
                           "--num_threads", "1", "--json", str(lines)], capture_output=True, text=True, env=env,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"infer --source failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines.read_text().splitlines()[-1])["summary"]


def one_model(model: Path, clip: Path, repeats: int, env: dict, spread) -> dict:
    fps, p50, p99, over, main_over, stages = [], [], [], [], [], {}
    for _ in range(repeats):
        s = _summary(model, clip, env)
        fps.append(s["fps"]), p50.append(s["latency_ms"]["p50"]), p99.append(s["latency_ms"]["p99"])
        over.append(s["overhead"])
        main = sum(s["stages_ms"][k]["mean"] for k in MAIN)
        main_over.append(s["frame_ms"] / main - 1.0)
        for k, v in s["stages_ms"].items():
            stages.setdefault(k, []).append(v["mean"])
    return {"model": model.name, "frames": s["frames"], "dropped": s["dropped"], "fps": spread(fps),
            "latency_p50_ms": spread(p50), "latency_p99_ms": spread(p99),
            "stage_mean_ms": {k: statistics.median(v) for k, v in stages.items()},
            "overhead": spread(over), "main_path_overhead": spread(main_over),
            "cpu_percent": s["cpu_percent"], "peak_rss_mb": s["peak_rss_mb"],
            "ok": statistics.median(main_over) <= TARGET_OVERHEAD and statistics.median(over) <= TARGET_OVERHEAD}


def measure(default_model: Optional[Path], work: Path, repeats: int, env: dict, spread) -> dict:
    from host.perf.postprocess import build_detector
    detector = build_detector(work / "yolo_head_2100x80_v2.tflite")
    out = {"clip": f"{SIZE[0]}x{SIZE[1]}, {FRAMES} frames, mp4v", "target_overhead_max": TARGET_OVERHEAD}
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4")
        for key, model in (("default", default_model), ("detector", detector)):
            if model is not None and model.is_file():
                out[key] = one_model(model, clip, repeats, env, spread)
    return out


def render(fig: Optional[dict], line) -> list:
    if not fig or "clip" not in fig:
        return []
    lines = [f"frame pipeline end to end (infer --source, {fig['clip']}; overhead target "
             f"<= {fig['target_overhead_max']:.0%})"]
    for key in ("default", "detector"):
        r = fig.get(key)
        if not r:
            continue
        split = ", ".join(f"{k} {v:.2f}" for k, v in r["stage_mean_ms"].items())
        lines.append(f"  {key} ({r['model']}): stage means ms: {split}")
        lines.append(line(f"{key} fps", r["fps"], "", ".1f"))
        lines.append(line(f"{key} latency p50", r["latency_p50_ms"], " ms", ".2f"))
        lines.append(line(f"{key} overhead vs serial stages", r["overhead"], "", ".3f"))
        lines.append(line(f"{key} main-path overhead", r["main_path_overhead"], "", ".3f"))
    return lines
