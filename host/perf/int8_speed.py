"""`make perf` steps: INT8 vs FP32 speed on a MobileNet-sized model, and latency against threads.

The model is Keras' MobileNetV2 (alpha 1.0, 224 x 224 x 3, 1000 classes, ~300 M MACs) with random
weights (no download: latency does not depend on the values), converted by the toolkit's own
path: fp32, and full INT8 calibrated on random images, both ending at the logits (the softmax
on the host, host/convert/logits.py), built once under build/perf. The default model is the
tiny end of the range; this is the size XNNPACK's published figures are for.

1. INT8/FP32 p50 at 1 thread, side by side in one `device bench` per repeat (target <= 0.33),
   with the INT8 graph's delegation count.
2. p50 at 1, 2 and 4 threads, FP32 and INT8, from the same bench run; speed-up at 2 threads
   (target >= 1.6x on this 2-core machine), plotted to reports/perf_threads.png.
3. Where the ratio stops: both files profiled per operator (`device profile`, 1 thread), their
   time summed per operator type, INT8/FP32 per type and its share of the INT8 time; the types
   slower than the target ratio are named as the limiting ones, with the ratio of all the rest.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

TARGET_RATIO = 0.33
TARGET_SPEEDUP_2 = 1.6
THREADS = (1, 2, 4)
INPUT = 224


def build_mobilenet(work: Path) -> dict[str, Path]:
    """fp32 and int8 MobileNetV2 .tflite files (logits-only), built once."""
    paths = {v: work / f"mobilenet_v2_{v}.tflite" for v in ("fp32", "int8")}
    if all(p.is_file() for p in paths.values()):
        return paths
    import numpy as np
    import keras

    from host.convert import logits
    from host.convert.quantize import convert_all
    from host.model.architecture import count_macs

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(INPUT, INPUT, 3), weights=None, classes=1000)
    calib = np.random.default_rng(0).random((16, INPUT, INPUT, 3)).astype(np.float32)
    files, _ = logits.apply(convert_all(model, calib, tuple(paths)), "host")
    work.mkdir(parents=True, exist_ok=True)
    (work / "mobilenet_v2.json").write_text(json.dumps({"macs": count_macs(model)}))
    for v, p in paths.items():
        p.write_bytes(files[v])
    return paths


def _bench(models: list[Path], env: dict, threads: tuple, runs: int) -> dict:
    proc = subprocess.run([sys.executable, "-m", "device", "bench", *map(str, models), "--num_threads",
                           ",".join(map(str, threads)), "--num_runs", str(runs), "--warmup_runs", "5",
                           "--json", "-"], capture_output=True, text=True, env=env, timeout=3600)
    doc = json.loads(proc.stdout)
    if doc["errors"]:
        raise RuntimeError(f"agent failed: {doc['errors'][0]}")
    return doc


def measure(work: Path, reports: Path, repeats: int, env: dict, spread) -> dict:
    paths = build_mobilenet(work)
    p50: dict = {(v, t): [] for v in paths for t in THREADS}
    ratio, speedup, model = [], {v: [] for v in paths}, {}
    for _ in range(repeats):
        # the ratio from its own 1-thread run (fp32 and int8 back to back), the sweep after it
        one = _bench([paths["fp32"], paths["int8"]], env, (1,), 60)["results"]
        ratio.append(one[1]["runs"][0]["p50_us"] / one[0]["runs"][0]["p50_us"])
        doc = _bench([paths["fp32"], paths["int8"]], env, THREADS, 30)
        for v, r in zip(paths, doc["results"]):
            by = {run["threads"]: run["p50_us"] for run in r["runs"]}
            model[v] = {k: r["model"].get(k) for k in ("ops_total", "ops_delegated", "ops_not_delegated")}
            for t in THREADS:
                p50[(v, t)].append(by[t])
            speedup[v].append(by[1] / by[2])
    facts = work / "mobilenet_v2.json"
    out = {"model": "keras MobileNetV2 1.0 224 (random weights), logits-only",
           "macs": json.loads(facts.read_text())["macs"] if facts.is_file() else None,
           "int8_over_fp32_1thread": spread(ratio), "target_ratio_max": TARGET_RATIO,
           "ratio_ok": statistics.median(ratio) <= TARGET_RATIO,
           "delegation": {v: f"{m['ops_delegated']}/{m['ops_total']}" for v, m in model.items()},
           "ops_not_delegated": {v: m["ops_not_delegated"] for v, m in model.items()},
           "threads": list(THREADS),
           "p50_us": {v: {str(t): spread(p50[(v, t)]) for t in THREADS} for v in paths},
           "speedup_2_threads": {v: spread(s) for v, s in speedup.items()},
           "target_speedup_2_threads_min": TARGET_SPEEDUP_2}
    out["speedup_ok"] = {v: statistics.median(s) >= TARGET_SPEEDUP_2 for v, s in speedup.items()}
    out["per_op_type"] = per_op_type(_profile_by_type(paths["fp32"], env), _profile_by_type(paths["int8"], env))
    out["plot"] = plot_threads(out, reports / "perf_threads.png")
    return out


def _profile_by_type(model: Path, env: dict) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-m", "device", "profile", str(model), "--num_threads", "1",
                           "--num_runs", "50", "--warmup_runs", "5", "--json", "-"],
                          capture_output=True, text=True, env=env, timeout=1800)
    doc = json.loads(proc.stdout)
    if doc["errors"]:
        raise RuntimeError(f"profile failed: {doc['errors'][0]}")
    return {r["op"]: r for r in doc["results"][0]["profile"]["by_type"]}


def per_op_type(fp32: dict[str, dict], int8: dict[str, dict], target: float = TARGET_RATIO) -> dict:
    """INT8/FP32 per operator type (types in only one graph, such as QUANTIZE, count as INT8's
    cost), each type's share of the INT8 time, the types slower than `target` (limiting, largest
    share first), and the ratio of everything else."""
    total8 = sum(r["latency_us"] for r in int8.values()) or 1.0
    rows = []
    for op, r8 in int8.items():
        r32 = fp32.get(op)
        ratio = r8["latency_us"] / r32["latency_us"] if r32 and r32["latency_us"] else None
        rows.append({"op": op, "count": r8["count"], "int8_us": round(r8["latency_us"], 1),
                     "fp32_us": round(r32["latency_us"], 1) if r32 else None,
                     "int8_over_fp32": round(ratio, 3) if ratio is not None else None,
                     "share_of_int8": round(r8["latency_us"] / total8, 3)})
    rows.sort(key=lambda r: -r["int8_us"])
    limiting = [r for r in rows if r["int8_over_fp32"] is None or r["int8_over_fp32"] > target]
    rest = [r for r in rows if r not in limiting]
    rest32 = sum(r["fp32_us"] for r in rest)
    return {"by_type": rows, "limiting": [r["op"] for r in limiting],
            "limiting_share_of_int8": round(sum(r["share_of_int8"] for r in limiting), 3),
            "rest_int8_over_fp32": round(sum(r["int8_us"] for r in rest) / rest32, 3) if rest32 else None}


def plot_threads(fig: dict, path: Path) -> str:
    from host.plots import pyplot, save_png

    plt = pyplot()
    f, ax = plt.subplots(figsize=(5, 3.5))
    for v, by in fig["p50_us"].items():
        ax.plot(fig["threads"], [by[str(t)]["median"] / 1000 for t in fig["threads"]], marker="o", label=v)
    ax.set_xticks(fig["threads"])
    ax.set_xlabel("threads")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("MobileNetV2 224: latency vs threads")
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(f, path)


def render(fig: dict | None, _line) -> list[str]:
    if not fig or "error" in fig or "skipped" in fig:
        return []
    lines = [f"INT8/FP32 on a MobileNet-sized model ({fig['model']}, {(fig['macs'] or 0) / 1e6:.0f} M MACs), "
             f"1 thread (target <= {fig['target_ratio_max']}; {'ok' if fig['ratio_ok'] else 'MISSED'}); "
             f"INT8 delegated {fig['delegation']['int8']} ops"]
    lines.append(_line("INT8/FP32 p50", fig["int8_over_fp32_1thread"], "x"))
    po = fig.get("per_op_type")
    if po:
        for r in po["by_type"]:
            ratio = f"{r['int8_over_fp32']:.2f}x FP32" if r["int8_over_fp32"] is not None else "INT8 only"
            lines.append(f"  {r['op']:<22} x{r['count']:<3} {r['int8_us']:>9.1f} µs INT8, {ratio}, "
                         f"{100 * r['share_of_int8']:.0f} % of INT8 time"
                         + ("  <- limiting" if r["op"] in po["limiting"] else ""))
        if po["limiting"]:
            lines.append(f"  limiting: {', '.join(po['limiting'])} ({100 * po['limiting_share_of_int8']:.0f} % of "
                         f"INT8 time); every other type together: {po['rest_int8_over_fp32']}x FP32")
    lines.append(f"threads: p50 vs threads, speed-up at 2 threads (target >= {fig['target_speedup_2_threads_min']}x);"
                 f" plot {fig['plot']}")
    for v, by in fig["p50_us"].items():
        for t in fig["threads"]:
            lines.append(_line(f"{v} p50, {t} thread{'s' if t > 1 else ''}", by[str(t)], " µs", ".0f"))
        lines.append(_line(f"{v} speed-up 1 -> 2 threads ({'ok' if fig['speedup_ok'][v] else 'MISSED'})",
                           fig["speedup_2_threads"][v], "x", ".2f"))
    return lines
