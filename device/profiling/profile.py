"""`python -m device profile MODEL`: per-operator latency and the static memory plan, on the board.

Why this method: the Python runtimes expose no op profiler, so the model is cut into
single-operator models (device/profiling/opcut.py), and each is timed like a whole model in `bench` (same
runtime, threads, XNNPACK setting, warm-up, percentiles). Every piece also pays the fixed cost of
one invoke(), which the whole model pays once: it is measured on a trivial model and subtracted,
so the pieces add up (`sum_p50_us` = sum of the operators' p50 + one invoke's fixed cost, checked
against `whole_p50_us` of the same run). Pieces run in graph order and each is fed what its
producers computed, so data-dependent operators see real values.
"""
from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any, Optional

from device import report
from device.contract import results
from device.errors import AgentError, EXIT_MODEL_FAILED, EXIT_OK, EXIT_USAGE, one_line


def add_parser(sub: Any, common: Any) -> None:
    """The `profile` subcommand's flags (cli.py calls this); run settings come from device/contract/params.py."""
    from device import defaults
    from device.contract import params
    p = sub.add_parser("profile", help="per-operator latency and the static memory plan")
    p.add_argument("models", nargs="+", metavar="MODEL")
    common(p)                                             # --json --runtime --num_threads N --timeout
    params.add_arguments(p, ("num_runs", "warmup_runs"))  # per operator, as bench per model
    p.add_argument("--no_xnnpack", action="store_true", help="builtin kernels only (no default delegate)")
    p.add_argument("--manifest", help="the bundle's manifest.json: names each model's variant")
    p.add_argument("--input", action="append", default=[], metavar="FILE.npy",
                   help="input tensor (as bench); default random data")
    p.add_argument("--seed", type=int, default=defaults.RANDOM_SEED)
    p.add_argument("--pieces", metavar="DIR", help="pieces cut elsewhere (python -m device.profiling.pieces MODEL DIR), "
                                                   "for runtimes without the flatbuffer schema (tflite-runtime)")


def command(args: Any, doc: dict, run_model_job: Any, runtime_job: Any, abs_input: Any) -> int:
    """The parent side: one isolated child per model, its result appended to doc."""
    from device.contract import inputs, params
    manifest = inputs.load_manifest(args.manifest)
    doc["settings"] = {"num_threads": [args.num_threads], "xnnpack": "off" if args.no_xnnpack else "on",
                       "num_runs": args.num_runs, "warmup_runs": args.warmup_runs, "timeout": args.timeout,
                       "input": args.input or "random", "seed": args.seed,
                       "manifest": os.path.abspath(args.manifest) if args.manifest else None}
    job = {"job": "profile", "runtime": runtime_job(doc), "threads": args.num_threads,
           "xnnpack": not args.no_xnnpack, "num_runs": args.num_runs, "warmup_runs": args.warmup_runs,
           "min_secs": 0.0, "max_samples": params.defaults()["max_samples"],
           "input_files": [abs_input(p) for p in args.input], "seed": args.seed}
    if args.pieces and len(args.models) != 1:
        raise AgentError("--pieces DIR goes with exactly one MODEL", EXIT_USAGE, "usage")
    for i, path in enumerate(args.models):
        label = f"[{i + 1}/{len(args.models)}] {os.path.basename(path)}"
        report.progress(f"{label} profile ({path})")
        cut = os.path.abspath(args.pieces) if args.pieces else _cut_here(path, job["runtime"]["name"])
        try:
            result, failure = run_model_job(path, dict(job, progress_label=label, pieces_dir=cut,
                                                       pieces_given=bool(args.pieces)),
                                            args.timeout, manifest)
        finally:
            if cut and not args.pieces:
                shutil.rmtree(cut, ignore_errors=True)
        if failure:
            doc["results"].append(failure)
            doc["errors"].append(failure["error"]["message"])
            continue
        doc["warnings"].extend(result.get("warnings", []))
        doc["results"].append(results.model_result(result["model"], result["variant"], runs=result["runs"],
                                                   memory=result["memory"], warnings=result["warnings"],
                                                   profile=result["profile"],
                                                   memory_plan=result["memory_plan"]))
    return EXIT_MODEL_FAILED if doc["errors"] else EXIT_OK


def _cut_here(path: str, runtime_name: str) -> Optional[str]:
    """Cut in this (parent) process, so reading the flatbuffer never counts in the child's memory
    figures; None when it cannot (the child then tries, and reports why it cannot, per model)."""
    from device.profiling import flatmodel, pieces
    from device.runtimes import modelfile
    out = tempfile.mkdtemp(prefix="edgekit-pieces-")
    try:
        pieces.prepare(flatmodel.read(path, runtime_name), out, modelfile.describe(path)["sha256"])
        return out
    except Exception:
        shutil.rmtree(out, ignore_errors=True)
        return None


# ---------------------------------------------------------------------------- the child's side

def _time(module: Any, path: str, feeds: Optional[list], spec: dict) -> tuple:
    """(interpreter, bench-style stats) of one model file; the interpreter keeps its outputs."""
    from device.measure import jobs
    interp, init_us = jobs._open(module, path, spec["threads"], spec["xnnpack"])
    if feeds is None:
        in_specs, _ = jobs._specs(interp)
        feeds = jobs._bench_feeds(in_specs, spec.get("input_files") or [], spec.get("seed", 0))
    stats = jobs._measure(interp, feeds, dict(spec, min_secs=0.0))
    stats["init_us"] = round(init_us, 3)
    return interp, stats, feeds


def _summary(ops: list) -> list:
    by_type: dict = {}
    for o in ops:
        row = by_type.setdefault(o["op"], {"op": o["op"], "count": 0, "latency_us": 0.0, "macs": 0,
                                           "untimed": 0})
        row["count"] += 1
        row["macs"] += o["macs"]
        if o["latency_us"] is None:
            row["untimed"] += 1
        else:
            row["latency_us"] = round(row["latency_us"] + o["latency_us"], 3)
    total = sum(r["latency_us"] for r in by_type.values())
    for r in by_type.values():
        r["share"] = round(r["latency_us"] / total, 4) if total > 0 else None
    return sorted(by_type.values(), key=lambda r: -r["latency_us"])


def run(spec: dict) -> dict:
    """The child job: whole model, invoke overhead, every operator, and the memory plan."""
    import numpy as np

    from device.contract import inputs
    from device.measure import memory
    from device.profiling import pieces
    from device.runtimes import graph, registry as runtime
    info = runtime.RuntimeInfo(**spec["runtime"])
    module = runtime.load_module(info)
    mem = {"rss_start_mb": spec.get("rss_start_mb"), "rss_imports_mb": memory.rss_mb()}
    baseline = memory.peak_rss_mb()
    path = spec["model_path"]
    label = spec.get("progress_label", os.path.basename(path))
    fd = spec.get("progress_fd")
    tmp = None
    if spec.get("pieces_dir"):         # cut on the host (this runtime has no flatbuffer schema)
        where = spec["pieces_dir"]
        index = pieces.load(where, spec.get("sha256"))
    else:
        from device.profiling import flatmodel
        flat = flatmodel.read(path, info.name)
        where = tmp = tempfile.mkdtemp(prefix="edgekit-profile-")
    try:
        if tmp:
            index = pieces.prepare(flat, tmp, spec.get("sha256"))
            del flat
        return _measure_all(spec, module, index, where, mem, baseline, label, fd, np, graph, inputs, memory)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _measure_all(spec, module, index, where, mem, baseline, label, fd, np, graph, inputs, memory) -> dict:
    path = spec["model_path"]
    warnings, runs, model = [], [], {}
    partitions: dict = {}
    whole_p50, feeds = None, None
    try:
        interp, whole, feeds = _time(module, path, None, spec)
        delegation = graph.analyse(interp)
        partitions = graph.partitions(interp) if spec["xnnpack"] else {}
        in_specs, out_specs = jobs_specs(interp)
        model = {"inputs": [graph.public_spec(s) for s in in_specs],
                 "outputs": [graph.public_spec(s) for s in out_specs]}
        model.update({k: delegation[k] for k in ("ops_total", "ops_delegated", "delegate_nodes",
                                                 "ops_not_delegated", "quantized", "op_types")})
        mem["rss_loaded_mb"] = memory.rss_mb()
        whole.update({"threads": spec["threads"], "xnnpack": spec["xnnpack"],
                      "ops_delegated": delegation["ops_delegated"], "delegate_nodes": delegation["delegate_nodes"]})
        runs.append(whole)
        whole_p50 = whole["p50_us"]
        del interp
    except AgentError as exc:  # e.g. a custom op without a kernel: profile the rest anyway
        warnings.append(f"{os.path.basename(path)}: the whole model cannot run ({exc}); "
                        "operators are profiled on their own")
        model = {"ops_total": len(index["ops"]), "ops_delegated": None}
    gc.collect()
    peak = memory.peak_rss_mb()
    mem["peak_rss_mb"] = peak
    mem["model_mb"] = round(peak - baseline, 2) if peak is not None and baseline is not None else None

    t_interp, t_stats, _ = _time(module, os.path.join(where, index["trivial"]), [np.zeros([1], np.float32)], spec)
    overhead = t_stats["p50_us"]
    del t_interp
    rng = np.random.default_rng(spec.get("seed", 0))
    values = {}
    if feeds is not None:
        values.update({int(t): a for t, a in zip(index["inputs"], feeds)})
    ops = []
    n_ops = len(index["ops"])
    for i, piece in enumerate(index["ops"]):
        if fd is not None:
            report.progress(f"{label} op {i + 1}/{n_ops}", fd)
        row = {"index": i, "delegated": i in partitions, "partition": partitions.get(i)}
        row.update(piece["facts"])
        row.update({"latency_us": None, "p90_us": None, "gross_p50_us": None, "piece_delegated": None,
                    "reason": piece["reason"]})
        if piece["weight_op"]:
            row.update(latency_us=0.0, p90_us=0.0,
                       note="unpacks constant weights once at load; timed with the op that uses them")
        elif piece["file"]:
            try:
                piece_feeds = [values[t] if t in values else inputs.random_input(s, rng)
                               for t, s in zip(piece["inputs"], piece["input_specs"])]
                p_interp, stats, _ = _time(module, os.path.join(where, piece["file"]), piece_feeds, spec)
                for detail, t in zip(p_interp.get_output_details(), piece["outputs"]):
                    values[int(t)] = p_interp.get_tensor(detail["index"])
                row["piece_delegated"] = graph.analyse(p_interp)["ops_delegated"] == 1
                row.update(latency_us=round(max(0.0, stats["p50_us"] - overhead), 3),
                           p90_us=round(max(0.0, stats["p90_us"] - overhead), 3), gross_p50_us=stats["p50_us"])
                del p_interp
            except AgentError as exc:
                row["reason"] = one_line(exc)
            except Exception as exc:  # a piece the runtime refuses in some other way: that op only
                row["reason"] = f"{type(exc).__name__}: {one_line(exc)}"
        ops.append(row)
    timed = [o["latency_us"] for o in ops if o["latency_us"] is not None]
    total = sum(timed)
    for o in ops:
        o["share"] = round(o["latency_us"] / total, 4) if o["latency_us"] is not None and total > 0 else None
    untimed = [o for o in ops if o["latency_us"] is None]
    if untimed:
        warnings.append(f"{os.path.basename(path)}: {len(untimed)} of {len(ops)} operator(s) not timed "
                        f"({'; '.join(sorted({o['op'] + ': ' + o['reason'] for o in untimed}))[:300]})")
    sum_p50 = round(total + overhead, 3) if timed else None
    profile = {"ops": ops, "by_type": _summary(ops), "whole_p50_us": whole_p50,
               "sum_p50_us": sum_p50, "invoke_overhead_us": overhead,
               "ratio": round(sum_p50 / whole_p50, 4) if sum_p50 and whole_p50 else None,
               "threads": spec["threads"], "xnnpack": spec["xnnpack"],
               "ops_timed": len(timed), "ops_total": len(ops), "cut_elsewhere": bool(spec.get("pieces_given"))}
    return {"model": model, "runs": runs, "memory": mem, "warnings": warnings,
            "profile": profile, "memory_plan": index["memory_plan"]}


def jobs_specs(interp: Any) -> tuple:
    from device.measure import jobs
    return jobs._specs(interp)
