"""`make perf`: the toolkit's own figures on this machine, printed and saved to reports/perf.json.

A benchmark, not a test: it reports figures (min / median / max over repeats) against the
targets the issues set, and never fails on a missed target. Every measurement runs the agent as
a separate process, exactly as on a board, so TensorFlow in this process does not inflate it.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from device.contract.fileio import atomic_write_text
from host.config import ARTIFACTS, REPORTS
from host.perf import (coldstart, frames as perf_frames, int8_speed, postprocess as perf_postprocess,
                       profile as perf_profile, runtimes as perf_runtimes, switch_cost)

ROOT = Path(__file__).resolve().parents[2]
REPEATS = int(os.environ.get("PERF_REPEATS", "3"))


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")


def agent_bench(models: list[Path], *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "device", "bench", *map(str, models), "--json", "-", *extra],
                          capture_output=True, text=True, env=_env(), timeout=1800)
    doc = json.loads(proc.stdout)
    if doc["errors"]:
        raise RuntimeError(f"agent failed: {doc['errors'][0]}")
    return doc


TARGET_INT8_RATIO = 0.33


def latency_ratio(bundle: Path) -> dict:
    """INT8 / FP32 p50 at 1 thread, with XNNPACK and with builtin kernels only; the INT8 graph's
    delegation (every op on XNNPACK is the target) and bench's warnings."""
    out: dict = {"target_int8_over_fp32_max": TARGET_INT8_RATIO}
    for label, extra in (("xnnpack", ()), ("builtin", ("--no_xnnpack",))):
        ratios, p50 = [], {"int8": [], "fp32": []}
        for _ in range(REPEATS):
            doc = agent_bench([bundle / "fp32.tflite", bundle / "int8.tflite"], "--num_threads", "1",
                              "--num_runs", "1000", "--warmup_runs", "50", *extra)
            by = {Path(r["model"]["path"]).stem: r["runs"][0]["p50_us"] for r in doc["results"]}
            ratios.append(by["int8"] / by["fp32"])
            p50["int8"].append(by["int8"]), p50["fp32"].append(by["fp32"])
            if label == "xnnpack":
                m = next(r["model"] for r in doc["results"] if Path(r["model"]["path"]).stem == "int8")
                out["int8_delegated"] = f"{m['ops_delegated']}/{m['ops_total']}"
                out["int8_all_delegated"] = m["ops_delegated"] == m["ops_total"]
                out["int8_not_delegated_why"] = m.get("not_delegated_why", {})
                out["warnings"] = doc["warnings"]
        out[label] = {"int8_over_fp32": spread(ratios), "int8_p50_us": spread(p50["int8"]),
                      "fp32_p50_us": spread(p50["fp32"])}
    out["ok"] = out["xnnpack"]["int8_over_fp32"]["median"] <= TARGET_INT8_RATIO and out["int8_all_delegated"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    out["softmax"] = manifest.get("softmax")
    return out


def size_and_accuracy(bundle: Path) -> dict:
    """From the bundle's manifest (host-side evaluation of the test split)."""
    m = json.loads((bundle / "manifest.json").read_text())["variants"]
    return {"int8_over_fp32_size": m["int8"]["size_bytes"] / m["fp32"]["size_bytes"],
            "int8_top1": m["int8"]["host_top1"], "fp32_top1": m["fp32"]["host_top1"],
            "accuracy_delta_pp": 100 * (m["int8"]["host_top1"] - m["fp32"]["host_top1"]),
            "targets": {"size_ratio_max": 0.30, "delta_pp_min": -0.3, "int8_top1_min_mnist5k": 0.98}}


def agent_overhead(model: Path) -> dict:
    """3 (+ the agent's side of 4). device/measure/perf_check.py: agent p50 vs a bare invoke() loop."""
    from device.measure.perf_check import measure

    return measure(str(model), rounds=REPEATS * 2 - 1, runs=2000)


_TF_PEAK = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
it = tf.lite.Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
for _ in range(200):
    it.invoke()
print([int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024)
"""


def tf_lite_peak(model: Path) -> dict:
    """The same model through tensorflow.lite in its own process (what the agent avoids)."""
    peaks = []
    for _ in range(REPEATS):
        proc = subprocess.run([sys.executable, "-c", _TF_PEAK, str(model)], capture_output=True, text=True,
                              env=_env(), timeout=600)
        peaks.append(float(proc.stdout.strip().splitlines()[-1]))
    return {"tensorflow_lite_peak_rss_mb": spread(peaks)}


def litert_benchmark(model: Path) -> dict:
    """LiteRT's own `litert-benchmark` (in the ai-edge-litert wheel) vs the agent, 1 thread."""
    tool = Path(sys.executable).parent / "litert-benchmark"
    if not tool.exists():
        return {"skipped": "litert-benchmark is not installed in this environment"}
    theirs, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(REPEATS):
            out = Path(tmp) / f"r{i}.json"
            subprocess.run([str(tool), "--model", str(model), "--num_runs", "2000", "--warmup_runs", "50",
                            "--num_threads", "1", "--result_json", str(out)], capture_output=True, text=True,
                           env=_env(), timeout=600, check=True)
            theirs.append(1000 * json.loads(out.read_text())["latency"]["median_ms"])
            doc = agent_bench([model], "--num_threads", "1", "--num_runs", "2000", "--warmup_runs", "50")
            ours.append(doc["results"][0]["runs"][0]["p50_us"])
    return {"litert_benchmark_median_us": spread(theirs), "agent_p50_us": spread(ours),
            "note": "litert-benchmark reports milliseconds with two decimals (10 µs resolution)"}


def serve_load(model: Path) -> dict:
    """`agent serve` under load on loopback: 8 clients, >= 10,000 requests (device/serving/load.py)."""
    proc = subprocess.run([sys.executable, "-m", "device.serving.load", str(model), "--clients", "8", "--secs", "10",
                           "--min_requests", "10000", "--json", "-"], capture_output=True, text=True,
                          env=_env(), timeout=300)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["serve_load failed"])[-1])
    return json.loads(proc.stdout)


def deploy_figures() -> dict:
    """6 and 7: deploy to a local sshd and a fleet (host/perf/deploy.py)."""
    try:
        from host.perf.deploy import measure as deploy_measure
    except ImportError as exc:
        return {"skipped": f"deploy figures unavailable ({exc})"}
    return deploy_measure(repeats=REPEATS)


def model_switch(bundle: Path) -> dict:
    """A deploy to HOST=local while the service is under load: failed requests, p99 around it."""
    from deploy.service.switch_perf import measure as switch_measure
    return switch_measure(bundle)


def _line(name: str, s: dict, unit: str = "", fmt: str = ".3f") -> str:
    return (f"  {name:<44} min {format(s['min'], fmt)}{unit}  median {format(s['median'], fmt)}{unit}  "
            f"max {format(s['max'], fmt)}{unit}  (n={s['n']})")


def main(bundle_name: str = "mnist5k") -> int:
    bundle = ARTIFACTS / bundle_name
    if not (bundle / "manifest.json").is_file():
        print(f"host: error: no bundle at {bundle}: run `make train quantize` (or `make all`) first", file=sys.stderr)
        return 2
    t0 = time.time()
    fig: dict = {"bundle": str(bundle), "repeats": REPEATS, "host": os.uname().nodename,
                 "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    steps = [("latency_ratio", lambda: latency_ratio(bundle)), ("size_accuracy", lambda: size_and_accuracy(bundle)),
             ("agent_overhead", lambda: agent_overhead(bundle / "int8.tflite")),
             ("tf_lite_memory", lambda: tf_lite_peak(bundle / "int8.tflite")),
             ("litert_benchmark", lambda: litert_benchmark(bundle / "int8.tflite")),
             ("serve_load", lambda: serve_load(bundle / "int8.tflite")),
             ("deploy", deploy_figures), ("model_switch", lambda: model_switch(bundle)),
             ("op_profile", lambda: perf_profile.measure(bundle, REPEATS, _env(), spread)),
             ("postprocess", lambda: perf_postprocess.measure(ROOT / "build" / "perf", REPEATS, _env(), spread)),
             ("int8_speed", lambda: int8_speed.measure(ROOT / "build" / "perf", REPORTS, REPEATS, _env(), spread)),
             ("cold_start", lambda: coldstart.measure(bundle, ROOT / "build" / "perf" / "coldstart",
                                                      max(REPEATS, coldstart.MIN_REPEATS), _env(), spread)),
             ("switch_cost", lambda: switch_cost.measure(bundle, {"mobilenet_v2_int8": int8_speed.build_mobilenet(
                 ROOT / "build" / "perf")["int8"]}, REPEATS, _env(), spread)),
             ("frames", lambda: perf_frames.measure(bundle / "int8.tflite", ROOT / "build" / "perf", REPEATS, _env(),
                                                    spread)),
             ("runtimes", lambda: perf_runtimes.measure(REPEATS, _env(), spread))]
    only = [k for k in os.environ.get("PERF_STEPS", "").split(",") if k]   # PERF_STEPS=a,b: those alone
    old_fig = json.loads((REPORTS / "perf.json").read_text()) if (REPORTS / "perf.json").is_file() else {}
    for key, step in steps:
        if only and key not in only:
            if key in old_fig:
                fig[key] = old_fig[key]         # the figures of the steps not run stay as they were
            continue
        print(f"perf: {key} ...", file=sys.stderr, flush=True)
        try:
            fig[key] = step()
        except Exception as exc:  # a failed measurement is reported, the others still run
            fig[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    fig["elapsed_s"] = round(time.time() - t0, 1)
    REPORTS.mkdir(parents=True, exist_ok=True)
    old = REPORTS / "perf.json"
    if old.is_file() and "search" in (kept := json.loads(old.read_text())):
        fig["search"] = kept["search"]      # `make search-perf` (its own step of make perf) keeps its figures
    atomic_write_text(REPORTS / "perf.json", json.dumps(fig, indent=2))
    print(render(fig))
    print(f"\nwritten: {REPORTS / 'perf.json'}")
    return 0


def numbered(lines: list[str]) -> list[str]:
    """Each section's heading (a line not indented) numbered in the order shown, so a new step is
    one more section, not a renumbering."""
    n, out = 0, []
    for line in lines:
        if line and not line[0].isspace():
            n += 1
            line = f"{n}. {line.split('. ', 1)[1] if line.split('. ', 1)[0].isdigit() else line}"
        out.append(line)
    return out


def render(fig: dict) -> str:
    lines = [f"edgekit perf on {fig['host']} ({fig['repeats']} repeats)"]
    lr = fig.get("latency_ratio", {})
    if "xnnpack" in lr:
        lines.append(f"INT8/FP32 p50 latency, 1 thread (lower = INT8 faster; target <= {TARGET_INT8_RATIO} with "
                     f"every op on XNNPACK: {'ok' if lr.get('ok') else 'MISSED'}); INT8 ops on XNNPACK "
                     f"{lr.get('int8_delegated')}, softmax {(lr.get('softmax') or {}).get('where', 'graph')}")
        lines.append(_line("with XNNPACK", lr["xnnpack"]["int8_over_fp32"], "x"))
        lines.append(_line("builtin kernels (--no_xnnpack)", lr["builtin"]["int8_over_fp32"], "x"))
        lines.append(_line("INT8 p50 (XNNPACK)", lr["xnnpack"]["int8_p50_us"], " µs", ".1f"))
        lines.append(_line("FP32 p50 (XNNPACK)", lr["xnnpack"]["fp32_p50_us"], " µs", ".1f"))
    sa = fig.get("size_accuracy", {})
    if "int8_over_fp32_size" in sa:
        lines.append("INT8 vs FP32 file size and accuracy (target <= 0.30x, >= -0.3 pp)")
        lines.append(f"  size ratio {sa['int8_over_fp32_size']:.3f}x, INT8 top-1 {100 * sa['int8_top1']:.2f} %, "
                     f"delta {sa['accuracy_delta_pp']:+.2f} pp")
    ao = fig.get("agent_overhead", {})
    if "agent_p50_us" in ao:
        lines.append("agent p50 vs bare invoke() loop (target within 5 %)")
        lines.append(f"  agent {ao['agent_p50_us']:.2f} µs, bare {ao['bare_p50_us']:.2f} µs, overhead "
                     f"{100 * ao['overhead']:+.1f} % ({'ok' if ao['overhead_ok'] else 'MISSED'})")
        over = ao.get("peak_over_bare_mb", ao["peak_rss_mb"] - ao["bare_peak_rss_mb"])
        lines.append("peak RSS of the agent's measuring child, default INT8 model (target <= bare invoke loop + 2 MB)")
        lines.append(f"  agent {ao['peak_rss_mb']:.1f} MB, bare loop {ao['bare_peak_rss_mb']:.1f} MB: {over:+.2f} MB "
                     f"({'ok' if ao['peak_rss_ok'] else 'MISSED'})")
    tm = fig.get("tf_lite_memory", {})
    if "tensorflow_lite_peak_rss_mb" in tm:
        lines.append(_line("same model through tensorflow.lite", tm["tensorflow_lite_peak_rss_mb"], " MB", ".1f"))
    lb = fig.get("litert_benchmark", {})
    if "agent_p50_us" in lb:
        lines.append("agent vs litert-benchmark, 1 thread")
        lines.append(_line("litert-benchmark median", lb["litert_benchmark_median_us"], " µs", ".1f"))
        lines.append(_line("agent p50", lb["agent_p50_us"], " µs", ".1f"))
    dp = fig.get("deploy", {})
    if "render" in dp:
        lines.append(dp["render"])
    sl = fig.get("serve_load", {})
    if "requests" in sl:
        lines.append("agent serve under load (loopback, 8 clients)")
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in sl.items() if k not in ("model",) and not isinstance(v, (list, dict))))
    ms = fig.get("model_switch", {})
    if "requests" in ms:
        lines.append("deploy to a serving HOST=local under load (target: 0 failed)")
        lines.append(f"  {ms['requests']} requests, {ms['failed']} failed; p99 before/during/after "
                     f"{ms['p99_us_before']}/{ms['p99_us_during']}/{ms['p99_us_after']} µs; deploy {ms['deploy_s']} s, "
                     f"first answer from the new release {ms['deploy_start_to_first_new_answer_s']} s after its start")
    lines += perf_profile.render(fig.get("op_profile"), _line)
    lines += perf_postprocess.render(fig.get("postprocess"), _line)
    lines += int8_speed.render(fig.get("int8_speed"), _line)
    lines += coldstart.render(fig.get("cold_start"), _line)
    lines += switch_cost.render(fig.get("switch_cost"), _line)
    lines += perf_frames.render(fig.get("frames"), _line)
    lines += perf_runtimes.render(fig.get("runtimes") or {}, _line)
    lines = [lines[0]] + numbered("\n".join(lines[1:]).splitlines())
    for key in ("latency_ratio", "size_accuracy", "agent_overhead", "tf_lite_memory", "litert_benchmark",
                "serve_load", "deploy", "model_switch", "op_profile", "postprocess", "int8_speed", "cold_start",
                "switch_cost", "frames", "runtimes"):
        v = fig.get(key, {})
        if isinstance(v, dict) and ("error" in v or "skipped" in v):
            lines.append(f"{key}: {v.get('error') or v.get('skipped')}")
    return "\n".join(lines)
