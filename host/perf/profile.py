"""`make perf` step 10: does the per-operator profile add up, and what does the memory plan explain?

For the default INT8 model and the largest model in ../shared/models: the ratio
sum_p50_us / whole_p50_us at 1 thread with XNNPACK (target 0.8-1.2 for models whose whole p50 is
at least 1 ms), and the static plan (weights, activation arena) against the measured model share
of RSS. Each repeat is one `python -m device profile` process, as on a board.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SHARED_MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
TARGET = (0.8, 1.2)
LONG_ENOUGH_US = 1000.0


def _profile(model: Path, env: dict, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "device", "profile", str(model), "--num_threads", "1",
                           "--num_runs", "200", "--warmup_runs", "20", "--json", "-", *extra],
                          capture_output=True, text=True, env=env, timeout=1800)
    doc = json.loads(proc.stdout)
    if doc["errors"]:
        raise RuntimeError(f"profile failed: {doc['errors'][0]}")
    return doc["results"][0]


def measure(bundle: Path, repeats: int, env: dict, spread) -> dict:
    """`spread` is host.perf.run's min/median/max summary (passed in: host.perf.run imports this module)."""
    models = {"default_int8": (bundle / "int8.tflite", ())}
    shared = sorted(SHARED_MODELS.glob("*.tflite"), key=lambda p: p.stat().st_size) if SHARED_MODELS.is_dir() else []
    if shared:
        models[f"largest_shared:{shared[-1].name}"] = (shared[-1], ())
        # Builtin kernels too: on a fast workstation XNNPACK runs even the largest model in < 1 ms,
        # where the target does not apply; without it the same graph is a >= 1 ms case.
        models[f"largest_shared:{shared[-1].name} --no_xnnpack"] = (shared[-1], ("--no_xnnpack",))
    out: dict = {"target_ratio": list(TARGET), "target_applies_from_whole_p50_us": LONG_ENOUGH_US}
    for label, (path, extra) in models.items():
        ratios, whole, overhead, model_mb = [], [], [], []
        res = None
        for _ in range(repeats):
            res = _profile(path, env, *extra)
            prof = res["profile"]
            ratios.append(prof["ratio"])
            whole.append(prof["whole_p50_us"])
            overhead.append(prof["invoke_overhead_us"])
            model_mb.append(res["memory"]["model_mb"])
        plan = res["memory_plan"]
        out[label] = {"model": str(path), "ops": len(res["profile"]["ops"]),
                      "ratio": spread(ratios), "whole_p50_us": spread(whole), "invoke_overhead_us": spread(overhead),
                      "weights_kb": plan["weights_bytes"] / 1024,
                      "unpacked_weights_kb": plan.get("unpacked_weights_bytes", 0) / 1024,
                      "arena_kb": plan["arena_bytes"] / 1024, "model_rss_mb": spread(model_mb)}
    if not shared:
        out["note"] = f"no models in {SHARED_MODELS}: only the default INT8 model was profiled"
    return out


def render(fig: dict, _line) -> list:
    """Lines for perf's printout; `_line` is host.perf.run's figure formatter."""
    if not fig or "error" in fig or "skipped" in fig:
        return []
    lines = [f"per-operator profile: sum of operator p50s / whole-model p50, 1 thread, XNNPACK unless said "
             f"(target {TARGET[0]}-{TARGET[1]} when whole p50 >= {LONG_ENOUGH_US:g} µs); memory plan vs RSS"]
    for label, v in fig.items():
        if not isinstance(v, dict) or "ratio" not in v:
            continue
        long_enough = v["whole_p50_us"]["median"] >= LONG_ENOUGH_US
        ok = TARGET[0] <= v["ratio"]["median"] <= TARGET[1]
        verdict = ("ok" if ok else "MISSED") if long_enough else "target n/a: whole p50 < 1 ms"
        lines.append(f"  {label} ({v['ops']} ops)  [{verdict}]")
        lines.append(_line("sum/whole ratio", v["ratio"], "x"))
        lines.append(_line("whole-model p50", v["whole_p50_us"], " µs", ".1f"))
        lines.append(_line("one invoke's fixed cost", v["invoke_overhead_us"], " µs", ".2f"))
        lines.append(f"  {'memory plan':<44} weights {v['weights_kb']:.1f} KB"
                     + (f" (+{v['unpacked_weights_kb']:.1f} KB unpacked)" if v["unpacked_weights_kb"] else "")
                     + f", arena {v['arena_kb']:.1f} KB = {(v['weights_kb'] + v['unpacked_weights_kb'] + v['arena_kb']) / 1024:.2f} MB"
                     f" vs measured model share of RSS {v['model_rss_mb']['median']:.2f} MB")
    if fig.get("note"):
        lines.append(f"  {fig['note']}")
    return lines
