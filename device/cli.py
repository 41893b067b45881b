"""The agent's commands (the command line itself is device/args.py; both are a user-facing
contract, see docs/contracts.md).

Every failure becomes one line on stderr (and `errors` in the JSON), with exit code 0 ok,
1 some model failed, 2 usage error; tracebacks never reach the user.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

from device import report
from device.args import PROG, build_parser
from device.contract import params, results
from device.contract.manifest import load_manifest
from device.errors import EXIT_MODEL_FAILED, EXIT_OK, EXIT_USAGE, AgentError
from device.measure import isolate, speed_notes, sysinfo
from device.runtimes import modelfile
from device.runtimes import registry as runtime


def _read_labels(path: Optional[str]) -> Optional[list]:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise AgentError(f"{path}: cannot read labels ({exc.strerror})", EXIT_USAGE, "usage") from None
    if not labels:
        raise AgentError(f"{path}: labels file is empty", EXIT_USAGE, "usage")
    return labels


def _describe_or_fail(path: str) -> tuple:
    """(model fields, None) or (partial model fields, error dict) for a bad file."""
    try:
        return modelfile.describe(path), None
    except AgentError as exc:
        return ({"path": os.path.abspath(path), "name": os.path.basename(path)},
                {"kind": exc.kind, "message": str(exc), "signal": None})


def _run_model_job(path: str, job: dict, timeout: float, manifest: Optional[dict], fork: bool = False) -> tuple:
    """Run a job for one model in a child: (result, None), or (None, a failed entry) when the file
    is bad or the child fails. The result carries the model's fields and its variant. `fork`: see
    device/measure/isolate.run."""
    model, error = _describe_or_fail(path)
    variant = results.variant_for(manifest, path, model.get("sha256"))
    if error is None:
        payload = isolate.run(dict(job, model_path=model["path"], sha256=model["sha256"]), timeout or None, fork)
        if payload["ok"]:
            result = payload["result"]
            result["model"] = dict(model, **result["model"])
            result["variant"] = variant
            return result, None
        error = payload["error"]
    message = error["message"] if error["message"].startswith(path) else f"{path}: {error['message']}"
    return None, results.failed_result(model, variant, error["kind"], message, error.get("signal"))


def _record_failure(doc: dict, entry: dict) -> None:
    doc["results"].append(entry)
    doc["errors"].append(entry["error"]["message"])


def _delegation_warning(name: str, model: dict, runtime_info: dict) -> Optional[str]:
    """Say so when XNNPACK did not take (all of) a model: the numbers then mean something else."""
    total, taken = model.get("ops_total"), model.get("ops_delegated")
    if not total or taken is None or taken == total:
        return None
    rt = f"{runtime_info.get('name')} {runtime_info.get('version') or ''}".strip()
    kind = "INT8 model" if model.get("quantized") else "model"
    if taken == 0:
        note = runtime.int8_delegation_note(runtime_info.get("name"))
        if model.get("delegation_note"):         # the runtime knows why (no XNNPACK provider)
            why = model["delegation_note"]
        elif model.get("quantized") and note:
            why = note
        elif not os.path.isdir("/sys/devices/system/cpu"):
            why = "XNNPACK cannot read the CPU's features without /sys (mount sysfs)"
        else:
            why = "it runs on the slower builtin kernels"
        return f"{name}: {kind} is not delegated to XNNPACK by {rt} (0/{total} ops); {why}"
    return speed_notes.partly_delegated(name, model)


def cmd_info(args, doc: dict) -> int:
    return EXIT_OK


def cmd_bench(args, doc: dict) -> int:
    xnnpack = params.XNNPACK_MODES[args.xnnpack]
    manifest = load_manifest(args.manifest)
    if args.eval and not os.path.isfile(args.eval):
        raise AgentError(f"{args.eval}: no such eval set", EXIT_USAGE, "usage")
    if args.num_runs > args.max_samples:
        doc["warnings"].append(f"--num_runs {args.num_runs} capped at --max_samples {args.max_samples}")
    doc["settings"] = dict({p.name: getattr(args, p.name) for p in params.BENCH_PARAMS},
                           input=args.input or "random", seed=args.seed,
                           manifest=os.path.abspath(args.manifest) if args.manifest else None,
                           eval_set=os.path.abspath(args.eval) if args.eval else None)
    job = {"job": "bench", "runtime": _runtime_job(doc), "threads": args.num_threads, "xnnpack": xnnpack,
           "num_runs": min(args.num_runs, args.max_samples), "warmup_runs": args.warmup_runs,
           "min_secs": args.min_secs, "max_samples": args.max_samples,
           "input_files": [_abs_input(p) for p in args.input], "seed": args.seed}
    for i, path in enumerate(args.models):
        if i and args.cooldown:
            time.sleep(args.cooldown)
        label = f"[{i + 1}/{len(args.models)}] {os.path.basename(path)}"
        report.progress(f"{label} ({path})")
        result, failure = _run_model_job(path, dict(job, progress_label=label), args.timeout, manifest)
        if failure:
            _record_failure(doc, failure)
            continue
        warnings = list(result.get("warnings", []))
        warning = _delegation_warning(result["model"]["name"], result["model"], doc["runtime"]) \
            if True in xnnpack else None
        if warning:
            warnings.append(warning)
            doc["warnings"].append(warning)
        evaluated = _eval_after_bench(args, doc, path, manifest, warnings) if args.eval else None
        extra = _evaluated_fields(evaluated)
        if args.source:
            extra["end_to_end"] = _frames_after_bench(args, doc, path, manifest)
        doc["results"].append(results.model_result(result["model"], result["variant"], runs=result["runs"],
                                                   memory=result["memory"], warnings=warnings, **extra))
    for entry, line in speed_notes.int8_slower(doc["results"]):      # INT8 slower than its FP32 twin
        entry["warnings"].append(line)
        doc["warnings"].append(line)
    return EXIT_MODEL_FAILED if doc["errors"] else EXIT_OK


def _frames_after_bench(args, doc: dict, path: str, manifest: Optional[dict]) -> list:
    """bench --source: the frame pipeline's end-to-end figures, one child per thread count."""
    out = []
    for threads in args.num_threads:
        job = {"job": "frames", "runtime": _runtime_job(doc), "threads": threads, "source": args.source,
               "frames": args.frames, "manifest": os.path.abspath(args.manifest) if args.manifest else None}
        result, failure = _run_model_job(path, job, args.timeout, manifest)
        if failure:
            doc["errors"].append(f"--source {args.source}: {failure['error']['message']}")
            return out
        out.append(result["end_to_end"])
    return out


def _eval_job(doc: dict, eval_set: str, manifest_path: Optional[str], threads: int) -> dict:
    return {"job": "eval", "runtime": _runtime_job(doc), "threads": threads,
            "eval_path": os.path.abspath(eval_set),
            "manifest": os.path.abspath(manifest_path) if manifest_path else None}


def _accuracy_warnings(result: dict) -> list:
    acc = result["accuracy"] or {}
    if acc.get("agreement_with_host") is not None and acc["agreement_with_host"] < 1.0:
        return [f"{result['model']['name']}: top-1 differs from the host's on "
                f"{acc['disagreements']} of {acc['count']} images"]
    return []


def _evaluated_fields(evaluated: Optional[dict]) -> dict:
    """What an eval child adds to a model's entry: accuracy (a classifier), or the predictions and
    task of a detector / pose model, which the host scores against the set's annotations."""
    if evaluated is None:
        return {"accuracy": None}
    if evaluated.get("predictions") is not None:
        return {"accuracy": None, "task": evaluated["task"], "predictions": evaluated["predictions"]}
    if evaluated.get("tensors") is not None:
        return {"accuracy": evaluated["accuracy"], "task": "raw", "tensors": evaluated["tensors"]}
    return {"accuracy": evaluated["accuracy"]}


def _eval_after_bench(args, doc: dict, path: str, manifest: Optional[dict], warnings: list) -> Optional[dict]:
    """Accuracy for a benchmarked model, in a child of its own (so it never adds to the bench's
    memory figures). A failure keeps the timing and is reported in `errors`."""
    result, failure = _run_model_job(path, _eval_job(doc, args.eval, args.manifest, args.num_threads[0]),
                                     args.timeout, manifest)
    if failure:
        doc["errors"].append(f"eval: {failure['error']['message']}")
        return None
    more = _accuracy_warnings(result)
    warnings.extend(more)
    doc["warnings"].extend(more)
    return result


def cmd_eval(args, doc: dict) -> int:
    for path, what in ((args.eval_set, "eval set"), (args.manifest, "manifest")):
        if path and not os.path.isfile(path):
            raise AgentError(f"{path}: no such {what}", EXIT_MODEL_FAILED, what.replace(" ", "_"))
    doc["settings"] = {"num_threads": args.num_threads, "eval_set": os.path.abspath(args.eval_set),
                       "manifest": os.path.abspath(args.manifest) if args.manifest else None}
    result, failure = _run_model_job(args.model, _eval_job(doc, args.eval_set, args.manifest, args.num_threads),
                                     args.timeout, load_manifest(args.manifest))
    if failure:
        _record_failure(doc, failure)
        if failure["error"]["kind"] == "usage":     # an eval set's arrays that fit none of the model's inputs
            return EXIT_USAGE
    else:
        warnings = list(result.get("warnings", [])) + _accuracy_warnings(result)
        doc["warnings"].extend(warnings)
        doc["results"].append(results.model_result(result["model"], result["variant"], memory=result["memory"],
                                                   warnings=warnings, **_evaluated_fields(result)))
    return EXIT_MODEL_FAILED if doc["errors"] else EXIT_OK


def cmd_infer(args, doc: dict) -> int:
    labels = _read_labels(args.labels)
    job = {"job": "infer", "runtime": _runtime_job(doc), "threads": args.num_threads,
           "inputs": [os.path.abspath(p) for p in args.inputs], "labels": labels,
           "top_k": args.top_k, "pixel_scale": args.pixel_scale, "pixel_offset": args.pixel_offset,
           "manifest": os.path.abspath(args.manifest) if args.manifest else None,
           "task": args.task, "threshold": args.threshold, "iou": args.iou,
           "draw": os.path.abspath(args.draw) if args.draw else None,
           "mask_out": os.path.abspath(args.mask_out) if args.mask_out else None}
    doc["settings"] = {k: job[k] for k in ("threads", "top_k", "pixel_scale", "pixel_offset", "manifest",
                                           "task", "threshold", "iou")}
    # forked: a one-shot infer is mostly start-up, and the fork skips the child's own (make perf's cold_start)
    result, failure = _run_model_job(args.model, job, args.timeout, load_manifest(args.manifest), fork=True)
    if failure:
        _record_failure(doc, failure)
        if failure["error"]["kind"] == "usage":     # a forced task the outputs do not fit, --mask_out on a detector
            return EXIT_USAGE
    else:
        for p in result["predictions"]:
            if "error" in p:
                doc["errors"].append(p["error"])
        doc["warnings"].extend(result.get("warnings", []))
        doc["results"].append(results.model_result(result["model"], result["variant"], memory=result["memory"],
                                                   predictions=result["predictions"], task=result["task"],
                                                   preprocess=result["preprocess"],
                                                   warnings=result.get("warnings", [])))
    return EXIT_MODEL_FAILED if doc["errors"] else EXIT_OK


def _infer_stream(args, source: str, where: list) -> int:
    """infer - / infer --watch DIR: one predictor in this process, JSON lines on stdout."""
    from device.sources import registry as sources, stream
    from device.serving.predictor import Predictor
    pred = Predictor(args.model, runtime.resolve(args.runtime), 1, args.num_threads,
                     load_manifest(args.manifest), _read_labels(args.labels), args.pixel_scale, args.pixel_offset,
                     args.task, args.threshold, args.iou)
    for note in pred.notes:
        _say("warning", note)
    items = sources.open_source(source, where, sources.Options(stdin=sys.stdin.buffer))
    return stream.run(pred, sources.get(source), items, args.top_k, sys.stdout)


def _abs_input(text: str) -> str:
    """FILE or NAME=FILE, with FILE made absolute (the child runs elsewhere)."""
    if "=" in text and not os.path.exists(text):
        name, path = text.split("=", 1)
        return f"{name}={os.path.abspath(path)}"
    return os.path.abspath(text)


def _runtime_job(doc: dict) -> dict:
    info = doc["_runtime"]
    return {"name": info.name, "version": info.version, "module": info.module}


def cmd_profile(args, doc: dict) -> int:
    from device.profiling import profile
    return profile.command(args, doc, _run_model_job, _runtime_job, _abs_input)


COMMANDS = {"info": cmd_info, "bench": cmd_bench, "eval": cmd_eval, "infer": cmd_infer, "profile": cmd_profile}


def _json_dest(argv: list) -> Optional[str]:
    """--json's value even when parsing failed, so usage errors still produce JSON."""
    for i, a in enumerate(argv):
        if a == "--json" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--json="):
            return a.split("=", 1)[1]
    return None


def _say(kind: str, text: str) -> None:
    """One whole line on stderr per error or warning, so a reader (deploy over SSH) can split them."""
    sys.stderr.write(f"{PROG}: {kind}: {' '.join(str(text).split())}\n")
    sys.stderr.flush()


def _parse(argv: list):
    """1. The command line (a usage error is an AgentError, exit 2)."""
    args = build_parser().parse_args(argv)
    if not args.command:
        raise AgentError("no command given (info, bench, eval, infer, profile, serve; see --help)", EXIT_USAGE, "usage")
    return args


def _run_long(args) -> Optional[int]:
    """2. The modes that run until stopped, with their own output: serve, and infer from stdin or a
    watched folder. None for every other command (and for infer over files)."""
    if args.command == "serve":
        from device.serving import server as serve
        return serve.main(args, _read_labels(args.labels))
    if args.command == "infer" and args.source:
        from device.video import command as frames
        return frames.infer(args, _read_labels(args.labels))
    # infer over files (no -, no --watch) runs in a child: the source modules (and NumPy) stay out of this process
    if args.command == "infer" and (args.watch or not args.inputs or "-" in args.inputs):
        from device.sources import registry as sources
        source, where = sources.choose(args.inputs, args.watch)
        if source != "files":
            return _infer_stream(args, source, where)
    return None


def _new_doc(args, argv: list, started: str) -> dict:
    """3. The result document: this board, the runtime (resolved for every command but info), and
    an emulation warning. doc["_runtime"] carries the RuntimeInfo for the command (not written)."""
    rt = runtime.resolve(args.runtime) if args.command != "info" else None
    device_info = sysinfo.collect(args.runtime)
    if rt is None:
        runtime_info = {k: device_info["runtime"].get(k) for k in ("name", "version")}
    else:
        runtime_info = {"name": rt.name, "version": rt.version}
    doc = results.new_doc(args.command, argv, started, device_info, runtime_info)
    doc["_runtime"] = rt
    if device_info["emulated"]:
        doc["warnings"].append(f"running under {device_info['emulator']} emulation: latency and memory "
                               "figures do not represent real hardware")
    return doc


def _failed_doc(doc: Optional[dict], argv: list, started: str, message: str) -> dict:
    """The document for a run that stopped on an error (a fresh one when it failed before 3)."""
    doc = doc or results.new_doc(argv[0] if argv and argv[0] in COMMANDS else "info", argv, started)
    doc.pop("_runtime", None)
    doc["errors"].append(message)
    return doc


def _report(doc: dict, code: int, args, argv: list) -> int:
    """5. Errors (and, with --json -, warnings) one line each on stderr, the JSON to --json, the
    human table otherwise; returns the exit code (1 when anything failed)."""
    results.finish(doc)
    if doc["errors"] and code == EXIT_OK:
        code = EXIT_MODEL_FAILED
    for line in doc["errors"]:
        _say("error", line)
    dest = getattr(args, "json", None) if args is not None else _json_dest(argv)
    if dest == "-":
        for line in doc["warnings"]:
            _say("warning", line)
    try:
        if dest:
            results.write(doc, dest)
        if dest != "-" and (doc["results"] or (doc["command"] == "info" and not doc["errors"])):
            report.print_human(doc)
    except OSError as exc:
        _say("error", f"cannot write {dest}: {exc.strerror}")
        return EXIT_MODEL_FAILED
    return code


def main(argv: Optional[list] = None) -> int:
    """1. parse, 2. the long-running modes, 3. the result document, 4. the command, 5. the report.
    Any failure on the way is one error line and an exit code; never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    started = results.utc_now()
    doc = None
    try:
        args = _parse(argv)
        code = _run_long(args)
        if code is not None:
            return code
        doc = _new_doc(args, argv, started)
        code = COMMANDS[args.command](args, doc)       # 4.
        doc.pop("_runtime", None)
    except AgentError as exc:
        code, doc, args = exc.exit_code, _failed_doc(doc, argv, started, str(exc)), None
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # a bug: still one line, never a traceback
        code, args = EXIT_MODEL_FAILED, None
        doc = _failed_doc(doc, argv, started, f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
    return _report(doc, code, args, argv)
