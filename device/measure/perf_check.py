"""The agent's own figures (a benchmark, not a test): `python -m device.measure.perf_check [MODEL] [--json PATH|-]`.

1. Overhead: the agent's p50 against a bare `invoke()` loop on the same model in the same run
   (target: within 5 %). Both run in fresh processes, alternating, and the medians are compared.
2. Memory: the agent's measuring child's peak RSS on the INT8 model against the bare loop's
   (target: within + 2 MB: Python, NumPy and the runtime are the floor, the agent's own share is what it adds).

The default model is the pipeline's artifacts/mnist5k/int8.tflite when it exists, else the
MLPerf Tiny keyword-spotting INT8 model next to the repo.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from device.args import Parser
from device.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AgentError, error_line
from device.measure.isolate import package_root
from device.runtimes.registry import resolve

PROG = "device.measure.perf_check"

TARGET_OVERHEAD = 0.05
TARGET_PEAK_OVER_BARE_MB = 2.0

_BARE_LOOP = r"""
import sys, time, json
import numpy as np
from {module} import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
rng = np.random.default_rng(0)
for d in it.get_input_details():
    if np.dtype(d["dtype"]).kind == "f":
        x = rng.random(d["shape"]).astype(d["dtype"])
    else:
        i = np.iinfo(d["dtype"]); x = rng.integers(i.min, i.max, d["shape"], endpoint=True).astype(d["dtype"])
    it.set_tensor(d["index"], x)
n, warm = int(sys.argv[2]), int(sys.argv[3])
for _ in range(warm):
    it.invoke()
clock = time.perf_counter_ns
s = []
for _ in range(n):
    t0 = clock(); it.invoke(); s.append(clock() - t0)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(json.dumps({{"p50_us": float(np.percentile(s, 50)) / 1000.0, "peak_rss_mb": hwm[0] / 1024.0 if hwm else None}}))
"""


def _default_model() -> str:
    root = os.path.dirname(package_root())
    for candidate in (os.path.join(package_root(), "artifacts", "mnist5k", "int8.tflite"),
                      os.path.join(root, "shared", "models", "kws_ref_model.tflite")):
        if os.path.isfile(candidate):
            return candidate
    raise AgentError("no default INT8 model found; pass one: python -m device.measure.perf_check MODEL", EXIT_USAGE)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def agent_bench(model: str, runs: int, warmup: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "device", "bench", model, "--num_runs", str(runs),
                          "--warmup_runs", str(warmup), "--json", "-"],
                         capture_output=True, text=True, env=_env(), check=False)
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        raise AgentError(f"the agent wrote no result (exit {out.returncode}): {out.stderr.strip()[-300:]}") from None
    if doc["errors"]:
        raise AgentError(f"agent failed: {doc['errors'][0]}")
    return doc


def bare_loop(model: str, runs: int, warmup: int, module: str) -> dict:
    code = _BARE_LOOP.format(module=module)
    out = subprocess.run([sys.executable, "-c", code, model, str(runs), str(warmup)],
                         capture_output=True, text=True, env=_env(), check=False)
    if out.returncode != 0:
        raise AgentError(f"the bare invoke() loop failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: str, rounds: int = 5, runs: int = 2000, warmup: int = 50) -> dict:
    agent_p50, bare, peak, bare_peak, runtime = [], [], [], [], None
    for _ in range(rounds):
        doc = agent_bench(model, runs, warmup)
        r = doc["results"][0]
        agent_p50.append(r["runs"][0]["p50_us"])
        peak.append(r["memory"]["peak_rss_mb"])
        runtime = doc["runtime"]
        module = resolve(runtime["name"]).module
        loop = bare_loop(model, runs, warmup, module)
        bare.append(loop["p50_us"])
        bare_peak.append(loop["peak_rss_mb"] or 0.0)
    a, b = statistics.median(agent_p50), statistics.median(bare)
    overhead = (a - b) / b if b else None
    return {
        "model": model, "runtime": runtime, "rounds": rounds, "runs_per_round": runs,
        "agent_p50_us": round(a, 3), "bare_p50_us": round(b, 3),
        "agent_p50_us_rounds": agent_p50, "bare_p50_us_rounds": [round(x, 3) for x in bare],
        "overhead": round(overhead, 4) if overhead is not None else None,
        "overhead_ok": overhead is not None and abs(overhead) <= TARGET_OVERHEAD,
        "peak_rss_mb": max(peak), "bare_peak_rss_mb": round(max(bare_peak), 2),
        "peak_over_bare_mb": round(max(peak) - max(bare_peak), 2),
        "peak_rss_ok": max(peak) - max(bare_peak) <= TARGET_PEAK_OVER_BARE_MB,
        "targets": {"overhead": TARGET_OVERHEAD, "peak_over_bare_mb": TARGET_PEAK_OVER_BARE_MB},
    }


def main(argv: list = None) -> int:
    """Exit 0 with the figures (targets missed are in them, not in the exit code), 2 for a wrong
    command line or no model, 1 when the agent or the bare loop fails."""
    p = Parser(prog="python -m device.measure.perf_check", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--json", metavar="PATH|-")
    try:
        args = p.parse_args(argv)
        figures = measure(args.model or _default_model(), args.rounds, args.runs)
        if args.json == "-":
            print(json.dumps(figures, indent=1))
            return EXIT_OK
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)
    except AgentError as exc:
        print(error_line(PROG, exc), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(error_line(PROG, f"cannot write {args.json}: {exc.strerror}"), file=sys.stderr)
        return EXIT_FAILED
    rt = figures["runtime"]
    print(f"model        {figures['model']} ({rt['name']} {rt['version']})")
    print(f"agent p50    {figures['agent_p50_us']:.2f} us   (median of {figures['rounds']} rounds)")
    print(f"bare  p50    {figures['bare_p50_us']:.2f} us")
    print(f"overhead     {figures['overhead'] * 100:+.1f} %   target within +-{TARGET_OVERHEAD * 100:.0f} %  "
          f"{'OK' if figures['overhead_ok'] else 'MISSED'}")
    print(f"peak RSS     {figures['peak_rss_mb']:.1f} MB   (the agent's measuring child)")
    print(f"bare  peak   {figures['bare_peak_rss_mb']:.1f} MB   (same model, python + numpy + runtime + invoke loop)")
    print(f"difference   {figures['peak_over_bare_mb']:+.2f} MB   target <= +{TARGET_PEAK_OVER_BARE_MB:g} MB  "
          f"{'OK' if figures['peak_rss_ok'] else 'MISSED'}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
