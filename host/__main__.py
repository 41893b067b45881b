"""`python -m host COMMAND`: the workstation side of edgekit.

Commands:
  train        train the MobileNet-style CNN on a dataset
  quantize     convert to fp32/dynamic/fp16/int8, evaluate, write the bundle (--model: your own model)
  bundle       bundle .tflite files as they are (+ labels, eval set)
  evaluate     re-evaluate a bundle's variants on the host
  report       reports/benchmark_report.md from results/
  compare      compare two result files; exit 1 on a regression
  score        COCO mAP / OKS AP / mIoU of infer results on an evaluation set, board beside host
  perf         the toolkit's own benchmark -> reports/perf.json
  search       the most accurate INT8 model within a board's budgets, measured on the board
  search-worker  join a model search's study from this host and run its trials
  search-perf  the model search's own figures -> reports/perf.json

Exit codes: 0 done, 1 something failed (a model, a board, a budget, a regression), 2 usage or bad
input (nothing was attempted), 130 interrupted. Every error is one line: `host: error: <message>`.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from host.errors import EXIT_INTERRUPTED, HostError, UsageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "python -m host"


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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a UsageError (the one error line), not usage text."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


# ---------------------------------------------------------------- which error is which exit code

def exit_code_for(exc: BaseException) -> Optional[int]:
    """The exit code of an error the user can act on, or None for a bug (which keeps its traceback).

    The one table: host's own HostError and the search's BoardFailure carry their code; the older
    modules' error types are bad input (2), except a conversion that failed or produced a wrong
    model, which is a model failure (1). device/contract's readers (a result file that fails its
    schema) report bad input as ValueError."""
    from device.errors import EXIT_FAILED, EXIT_USAGE, AgentError
    from host.convert.importers import ModelError
    from host.convert.quantize import ConversionError
    from host.data.builtin import DatasetError
    from host.pipeline.bundle import BundleError
    from host.search.board import BoardFailure
    from host.search.space import SearchError

    own_code = None
    table: tuple[tuple[type, Optional[int]], ...] = (
        (HostError, own_code),              # UsageError 2, Interrupted 130, the rest 1
        (BoardFailure, own_code),           # 2 for a bad host or profile, 1 for a board that failed
        (ConversionError, EXIT_FAILED),     # "int8 model still has float ops", a converter failure
        (SearchError, EXIT_USAGE),          # space file, budgets, a leaderboard of another search
        (DatasetError, EXIT_USAGE),         # a dataset, labels, eval or calibration set unusable as given
        (ModelError, EXIT_USAGE),           # a model unusable as given (format, inputs, ops)
        (BundleError, EXIT_USAGE),          # no bundle, or one that does not match its manifest
        (AgentError, EXIT_USAGE),           # an image or preprocessing the board-side code refused
        (FileNotFoundError, EXIT_USAGE),    # no trained model, no result file
        (ValueError, EXIT_USAGE),           # a result file that is not JSON or fails its schema
    )
    for kind, code in table:
        if isinstance(exc, kind):
            return exc.exit_code if code is own_code else code
    return None


# ---------------------------------------------------------------- the commands

def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _variants(text: str) -> str:
    """--variants a,b: each one the converter knows (checked before anything runs)."""
    from host.config import DEFAULTS

    unknown = [v for v in text.split(",") if v not in DEFAULTS.variants]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant {', '.join(unknown)}; choose from "
                                         f"{', '.join(DEFAULTS.variants)}")
    return text


def _model_args(p: argparse.ArgumentParser, quantize: bool) -> None:
    """Your own model and data: the Makefile's MODEL=, CALIB=, CALIB_N=, EVAL=, LABELS=, ..."""
    from host.config import add_flag

    p.add_argument("--model", required=not quantize,
                   help=".keras / .h5 / .onnx / SavedModel dir" if quantize else "a.tflite[,b.tflite]")
    p.add_argument("--eval", help="folder:PATH | npz:PATH (x_test, y_test) | csv:PATH (file,label) for a "
                                  "classifier; coco:JSON:IMAGES | yolo:PATH | masks:IMAGES:MASKS for other tasks")
    p.add_argument("--task", choices=("classify", "detect", "segment", "keypoints", "raw"),
                   help="what the outputs mean (default: recognised from them, as the board does)")
    p.add_argument("--labels", help="labels file, one per line")
    p.add_argument("--preprocess", help="unit | signed | raw | imagenet")
    add_flag(p, "--pixel_scale", "--pixel-scale", dest="pixel_scale",
             help="f = pixel*scale + offset (one value or R,G,B)")
    add_flag(p, "--pixel_offset", "--pixel-offset", dest="pixel_offset")
    p.add_argument("--color-order", default="RGB", help="RGB | BGR (what the model wants)")
    p.add_argument("--resize", default="stretch", help="stretch | crop (centre crop to aspect, then resize)")
    if quantize:
        p.add_argument("--calib", help="dataset spec, folder:PATH of images, npz:PATH, or random")
        add_flag(p, "--calib_n", "--calib-n", dest="calib_n", type=int, default=None, metavar="N",
                 help="calibration images (default 300)")
        p.add_argument("--max-drop-pp", type=float, default=1.0)
        p.add_argument("--int8-fallback", type=int, default=0, help="keep the N worst layers float ('mixed')")
        p.add_argument("--signature", help="SavedModel signature (default serving_default)")
        p.add_argument("--input", help="an ONNX model's input shape, e.g. 1x3x224x224 (fixes dynamic dims)")
        p.add_argument("--weights", help="state_dict file for MODEL=net.py:build_fn (PyTorch)")


def _model_options(args: argparse.Namespace, quantize: bool):
    from host.pipeline.byom import Options

    first = Path(args.model.split(",")[0].strip().rstrip("/"))
    opts = Options(model=args.model, name=args.name or first.stem, eval=args.eval, labels=args.labels,
                   preprocess=args.preprocess, pixel_scale=args.pixel_scale, pixel_offset=args.pixel_offset,
                   color_order=args.color_order, resize=args.resize, task=args.task)
    if quantize:
        opts.calib, opts.signature, opts.input, opts.weights = args.calib, args.signature, args.input, args.weights
        opts.calib_n = args.calib_n or args.calibration_samples
        opts.max_drop_pp, opts.int8_fallback = args.max_drop_pp, args.int8_fallback
        opts.variants = tuple(args.variants.split(","))
        opts.softmax = args.softmax
        if opts.calib_n < 1 or opts.int8_fallback < 0:
            raise UsageError("CALIB_N must be >= 1 and INT8_FALLBACK >= 0")
    return opts


def _train_args(t: argparse.ArgumentParser) -> None:
    from host.config import DEFAULTS

    t.add_argument("--dataset", default=DEFAULTS.dataset)
    t.add_argument("--name", default=None, help="bundle name (artifacts/NAME); default from the dataset")
    t.add_argument("--alpha", type=float, default=DEFAULTS.alpha, help="width multiplier")
    t.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    t.add_argument("--seed", type=int, default=DEFAULTS.seed)
    t.add_argument("--image-size", type=_size, default=None, help="HxW for folder: datasets")


def _train(args: argparse.Namespace) -> None:
    from host.pipeline import steps as pipeline

    name = args.name or args.dataset.replace("/", "_").replace(":", "_")
    pipeline.run_train(args.dataset, name, args.epochs, args.alpha, args.seed, args.image_size)


def _quantize_args(q: argparse.ArgumentParser) -> None:
    from host.config import DEFAULTS

    q.add_argument("--name", default=None, help="bundle name; default the dataset, or with --model the model's file name")
    # CALIB_N= for the built-in model too (--calib_n); the older spelling keeps its own dest
    q.add_argument("--calibration-samples", type=int, default=DEFAULTS.calibration_samples, help=argparse.SUPPRESS)
    q.add_argument("--variants", type=_variants, default=",".join(DEFAULTS.variants))
    q.add_argument("--softmax", choices=("host", "graph"), default="host",
                   help="a classifier's final softmax: host (default: the graph ends at the logits, every op "
                        "stays on XNNPACK, the agent computes probabilities in NumPy) or graph (kept in the model)")
    _model_args(q, quantize=True)


def _quantize(args: argparse.Namespace) -> None:
    from host.config import DEFAULTS

    if args.model:
        from host.pipeline.byom import run_quantize_model

        run_quantize_model(_model_options(args, quantize=True))
        return
    from host.pipeline import steps as pipeline

    samples = args.calib_n or args.calibration_samples
    if samples < 1:
        raise UsageError("CALIB_N must be >= 1")
    pipeline.run_quantize(args.name or DEFAULTS.dataset, samples, tuple(args.variants.split(",")), args.softmax)


def _bundle_args(b: argparse.ArgumentParser) -> None:
    b.add_argument("--name", default=None, help="bundle name; default the first model's file name")
    _model_args(b, quantize=False)


def _bundle(args: argparse.Namespace) -> None:
    from host.pipeline.byom import run_bundle

    run_bundle(_model_options(args, quantize=False))


def _evaluate_args(e: argparse.ArgumentParser) -> None:
    from host.config import DEFAULTS

    e.add_argument("--name", default=DEFAULTS.dataset)


def _evaluate(args: argparse.Namespace) -> None:
    from host.pipeline import steps as pipeline

    pipeline.run_evaluate(args.name)


def _report_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("--html", action="store_true")


def _report(args: argparse.Namespace) -> None:
    from host.report.build import write_report

    write_report(html=args.html)


def _compare_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--threshold", type=float, default=5.0, help="allowed p50 regression in percent")
    c.add_argument("--cross-board", action="store_true", help="compare results from two different boards")


def _compare(args: argparse.Namespace) -> int:
    from host.compare.results import compare_main

    return compare_main(args.a, args.b, args.threshold, args.cross_board)


def _score_args(c: argparse.ArgumentParser) -> None:
    from host.metrics import cli

    cli.add_arguments(c)


def _score(args: argparse.Namespace) -> int:
    from host.metrics import cli

    return cli.run(args)


def _perf(args: argparse.Namespace) -> int:
    from host.perf.run import main as perf_main

    return perf_main()


def _search_args(s: argparse.ArgumentParser) -> None:
    from host.search import cli

    cli.add_arguments(s)


def _search(args: argparse.Namespace) -> int:
    from host.search import cli

    return cli.run(args)


def _search_worker_args(s: argparse.ArgumentParser) -> None:
    from host.search import cli

    cli.add_worker_arguments(s)


def _search_worker(args: argparse.Namespace) -> int:
    from host.search import cli

    return cli.run_worker(args)


def _search_perf(args: argparse.Namespace) -> int:
    from host.search import cli

    return cli.run_perf(args)


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    run: Callable[[argparse.Namespace], Optional[int]]     # None means done (exit 0)
    arguments: Callable[[argparse.ArgumentParser], None]
    help: str
    tensorflow: bool = False        # loads TensorFlow: its native log lines go to a file


COMMANDS: dict[str, Command] = {
    "train": Command(_train, _train_args, "train the MobileNet-style CNN", tensorflow=True),
    "quantize": Command(_quantize, _quantize_args, "convert to fp32/dynamic/fp16/int8, evaluate, write the bundle",
                        tensorflow=True),
    "bundle": Command(_bundle, _bundle_args, "bundle .tflite files as they are (+ labels, eval set)", tensorflow=True),
    "evaluate": Command(_evaluate, _evaluate_args, "re-evaluate a bundle's variants on the host", tensorflow=True),
    "report": Command(_report, _report_args, "reports/benchmark_report.md from results/"),
    "compare": Command(_compare, _compare_args, "compare two result files; exit 1 on regression"),
    "score": Command(_score, _score_args, "COCO mAP / OKS AP / mIoU of infer results on an evaluation set, "
                                          "board beside host"),
    "perf": Command(_perf, _no_args, "the toolkit's own benchmark -> reports/perf.json"),
    "search": Command(_search, _search_args, "the most accurate INT8 model within a board's budgets, "
                                              "measured on the board", tensorflow=True),
    "search-worker": Command(_search_worker, _search_worker_args, "join a model search's study (STORAGE=, NAME=) "
                                                                  "and run its trials", tensorflow=True),
    "search-perf": Command(_search_perf, _no_args, "the model search's figures on mnist5k/HOST=local "
                                                    "-> reports/perf.json", tensorflow=True),
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        command = COMMANDS[args.cmd]
        if command.tensorflow:
            _divert_native_stderr()
        code = command.run(args)
    except KeyboardInterrupt:
        print("host: error: interrupted: nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        print(f"host: error: {exc}", file=sys.stderr)
        return code
    return 0 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
