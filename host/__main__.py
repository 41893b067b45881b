"""`python -m host train|quantize|evaluate|report|compare|perf`: the workstation side of edgekit."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _divert_native_stderr() -> None:
    """Send C++ log chatter (absl, oneDNN, converter, XNNPACK lines) to a log file, not the terminal.

    Python's own stderr (errors, progress bars) keeps the terminal through a duplicate of fd 2;
    only what native code writes to fd 2 goes to artifacts/native-stderr.log. EDGEKIT_VERBOSE=1
    keeps everything on the terminal.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if os.environ.get("EDGEKIT_VERBOSE"):
        return
    from host.config import ARTIFACTS

    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = os.open(ARTIFACTS / "native-stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _byom_args(p: argparse.ArgumentParser, quantize: bool) -> None:
    """Your own model and data (issue 12); the Makefile's MODEL=, CALIB=, EVAL=, LABELS=, ..."""
    p.add_argument("--model", required=not quantize,
                   help=".keras / .h5 / SavedModel dir" if quantize else "a.tflite[,b.tflite]")
    p.add_argument("--eval", help="folder:PATH | npz:PATH (x_test, y_test) | csv:PATH (file,label)")
    p.add_argument("--labels", help="labels file, one per line")
    p.add_argument("--preprocess", help="unit | signed | raw | imagenet")
    p.add_argument("--pixel-scale", help="f = pixel*scale + offset (one value or R,G,B)")
    p.add_argument("--pixel-offset")
    p.add_argument("--color-order", default="RGB", help="RGB | BGR (what the model wants)")
    p.add_argument("--resize", default="stretch", help="stretch | crop (centre crop to aspect, then resize)")
    if quantize:
        p.add_argument("--calib", help="dataset spec, folder:PATH of images, npz:PATH, or random")
        p.add_argument("--calib-n", type=int, default=None, help="calibration images (default 300)")
        p.add_argument("--max-drop-pp", type=float, default=1.0)
        p.add_argument("--int8-fallback", type=int, default=0, help="keep the N worst layers float ('mixed')")
        p.add_argument("--signature", help="SavedModel signature (default serving_default)")


def _byom_options(args, quantize: bool):
    from host.pipeline.byom import Options

    first = Path(args.model.split(",")[0].strip().rstrip("/"))
    opts = Options(model=args.model, name=args.name or first.stem, eval=args.eval, labels=args.labels,
                   preprocess=args.preprocess, pixel_scale=args.pixel_scale, pixel_offset=args.pixel_offset,
                   color_order=args.color_order, resize=args.resize)
    if quantize:
        opts.calib, opts.signature = args.calib, args.signature
        opts.calib_n = args.calib_n or args.calibration_samples
        opts.max_drop_pp, opts.int8_fallback = args.max_drop_pp, args.int8_fallback
        opts.variants = tuple(args.variants.split(","))
        if opts.calib_n < 1 or opts.int8_fallback < 0:
            raise ValueError("CALIB_N must be >= 1 and INT8_FALLBACK >= 0")
    return opts


def main(argv: list[str] | None = None) -> int:
    from host.config import DEFAULTS

    p = argparse.ArgumentParser(prog="python -m host", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the MobileNet-style CNN")
    t.add_argument("--dataset", default=DEFAULTS.dataset)
    t.add_argument("--name", default=None, help="bundle name (artifacts/NAME); default from the dataset")
    t.add_argument("--alpha", type=float, default=DEFAULTS.alpha, help="width multiplier")
    t.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    t.add_argument("--seed", type=int, default=DEFAULTS.seed)
    t.add_argument("--image-size", type=_size, default=None, help="HxW for folder: datasets")
    q = sub.add_parser("quantize", help="convert to fp32/dynamic/fp16/int8, evaluate, write the bundle")
    q.add_argument("--name", default=None, help="bundle name; default the dataset, or with --model the model's file name")
    q.add_argument("--calibration-samples", type=int, default=DEFAULTS.calibration_samples)
    q.add_argument("--variants", default=",".join(DEFAULTS.variants))
    _byom_args(q, quantize=True)
    b = sub.add_parser("bundle", help="bundle .tflite files as they are (+ labels, eval set)")
    b.add_argument("--name", default=None, help="bundle name; default the first model's file name")
    _byom_args(b, quantize=False)
    e = sub.add_parser("evaluate", help="re-evaluate a bundle's variants on the host")
    e.add_argument("--name", default=DEFAULTS.dataset)
    r = sub.add_parser("report", help="reports/benchmark_report.md from results/")
    r.add_argument("--html", action="store_true")
    c = sub.add_parser("compare", help="compare two result files; non-zero exit on regression")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--threshold", type=float, default=5.0, help="allowed p50 regression in percent")
    c.add_argument("--cross-board", action="store_true", help="compare results from two different boards")
    sub.add_parser("perf", help="the toolkit's own benchmark -> reports/perf.json")
    from host.search.cli import add_parser as add_search

    add_search(sub)
    args = p.parse_args(argv)

    from device.errors import AgentError
    from host.convert.source import ModelError
    from host.convert.quantize import ConversionError
    from host.data.builtin import DatasetError
    from host.pipeline.bundle import BundleError

    try:
        if args.cmd in ("train", "quantize", "evaluate", "bundle", "search", "search-perf"):
            _divert_native_stderr()
        from host.pipeline import steps as pipeline

        if args.cmd == "train":
            name = args.name or args.dataset.replace("/", "_").replace(":", "_")
            pipeline.run_train(args.dataset, name, args.epochs, args.alpha, args.seed, args.image_size)
        elif args.cmd == "quantize" and args.model:
            from host.pipeline.byom import run_quantize_model

            run_quantize_model(_byom_options(args, quantize=True))
        elif args.cmd == "bundle":
            from host.pipeline.byom import run_bundle

            run_bundle(_byom_options(args, quantize=False))
        elif args.cmd == "quantize":
            pipeline.run_quantize(args.name or DEFAULTS.dataset, args.calibration_samples, tuple(args.variants.split(",")))
        elif args.cmd == "evaluate":
            pipeline.run_evaluate(args.name)
        elif args.cmd == "report":
            from host.report.build import write_report

            write_report(html=args.html)
        elif args.cmd == "compare":
            from host.compare.results import compare_main

            return compare_main(args.a, args.b, args.threshold, args.cross_board)
        elif args.cmd in ("search", "search-perf"):
            from host.search.cli import main as search_main

            return search_main(args)
        elif args.cmd == "perf":
            from host.perf.run import main as perf_main

            return perf_main()
    except (DatasetError, ConversionError, BundleError, ModelError, AgentError, FileNotFoundError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
