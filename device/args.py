"""The agent's command line: every command, flag and default (a user-facing contract, see
docs/contracts.md). Flags are snake_case like TFLite's benchmark_model; bench settings come from
device/contract/params.py, so the agent and deploy agree on them.
"""
from __future__ import annotations

import argparse
import os

from device import __version__, defaults
from device.contract import params
from device.errors import EXIT_USAGE, AgentError

PROG = "edgekit-agent"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is an AgentError (one line), not usage text and sys.exit."""

    def error(self, message: str):
        raise AgentError(f"{message} (see {self.prog} --help)", EXIT_USAGE, "usage")


def _int_at_least(lowest: int):
    """An argparse type for integers >= lowest, so commands never see a count they must patch up."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}")
        return value
    return parse


_at_least_0 = _int_at_least(0)   # --warmup_runs 0, --port 0 (any free port)
_at_least_1 = _int_at_least(1)   # counts, sizes, threads


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="edgekit device agent: benchmark, evaluate and run "
                                            "TFLite models on this board.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench,eval,infer,profile,serve}", parser_class=Parser)

    def common(p, single_run=True):
        p.add_argument("--json", metavar="PATH|-", help="write the result JSON to PATH, or stdout with -")
        p.add_argument("--runtime", help="ai_edge_litert | tflite_runtime | tensorflow (default: first found) | "
                                         "onnxruntime (.onnx models)")
        if single_run:      # eval and infer run one setting: one thread count, the table's timeout
            p.add_argument("--num_threads", type=_at_least_1, default=params.defaults()["num_threads"][0],
                           help="threads for the interpreter")
            params.add_arguments(p, ("timeout",))

    p = sub.add_parser("info", help="describe this board and its runtime")
    p.add_argument("--json", metavar="PATH|-")
    p.add_argument("--runtime")

    p = sub.add_parser("bench", help="latency and memory of one or more models")
    p.add_argument("models", nargs="+", metavar="MODEL")
    common(p, single_run=False)
    params.add_arguments(p)      # every bench setting, from device/contract/params.py
    p.add_argument("--no_xnnpack", dest="xnnpack", action="store_const", const="off", default=argparse.SUPPRESS,
                   help="builtin kernels only (the same as --xnnpack off)")
    p.add_argument("--manifest", help="the bundle's manifest.json: names each model's variant "
                                      "(and preprocessing for --eval)")
    p.add_argument("--eval", metavar="EVAL.npz", help="also measure on-device accuracy on this eval set, "
                                                      "in a separate child after the timing")
    p.add_argument("--input", action="append", default=[], metavar="FILE.npy",
                   help="input tensor, once per model input in order, or NAME=FILE.npy; default random data")
    p.add_argument("--seed", type=int, default=defaults.RANDOM_SEED)
    p.add_argument("--source", metavar="SPEC", help="also run the frame pipeline end to end on video:CLIP, "
                                                    "images:FOLDER, camera:N or a stream (fps, latency, stage split)")
    p.add_argument("--frames", type=_at_least_1, metavar="N", help="--source: frames to answer (default: a "
                                                                   "file's all, 300 from a camera or stream)")

    from device.profiling import profile
    profile.add_parser(sub, common)

    p = sub.add_parser("eval", help="on-device accuracy over a bundle's eval.npz")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("eval_set", metavar="EVAL.npz")
    p.add_argument("--manifest", help="the bundle's manifest.json (preprocessing, host predictions)")
    common(p)

    def task_flags(p):
        from device.tasks import NAMES
        p.add_argument("--task", choices=list(NAMES), help="what the outputs mean (default: recognised from them)")
        p.add_argument("--threshold", type=float, help="lowest score reported (detect 0.25, multi-pose 0.2)")
        p.add_argument("--iou", type=float, default=None,
                       help="NMS IoU for raw YOLO heads (default: the family's own, 0.7 for YOLOv8 and later, 0.45 for YOLOv5)")

    p = sub.add_parser("infer", help="run a model on images or .npy tensors (classify, detect, segment, ...)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image, .npy or a folder of them; - reads paths or .npy arrays from stdin")
    p.add_argument("--watch", metavar="DIR", help="classify new files in DIR as they appear (JSON lines)")
    p.add_argument("--manifest")
    p.add_argument("--labels", help="text file, one label per line")
    p.add_argument("--top_k", type=_at_least_1, default=defaults.TOP_K)
    p.add_argument("--pixel_scale", type=float, help="override: f = pixel*scale + offset")
    p.add_argument("--pixel_offset", type=float)
    task_flags(p)
    p.add_argument("--draw", metavar="OUT", help="write the image with the answer drawn on it (a folder for "
                                                 "several inputs)")
    p.add_argument("--mask_out", "--mask-out", dest="mask_out", metavar="MASK.png",
                   help="segment: write the class-index PNG (a folder for several inputs)")
    from device.video.command import add_flags as frame_flags
    frame_flags(p)
    common(p)

    p = sub.add_parser("serve", help="HTTP inference service (127.0.0.1 by default)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--manifest")
    p.add_argument("--labels")
    p.add_argument("--host", default=defaults.SERVE_HOST)
    p.add_argument("--port", type=_at_least_0, default=defaults.SERVE_PORT)
    p.add_argument("--workers", type=_at_least_1, default=defaults.SERVE_WORKERS)
    p.add_argument("--num_threads", type=_at_least_1, default=params.defaults()["num_threads"][0])
    p.add_argument("--max_body", type=_at_least_1, default=defaults.SERVE_MAX_BODY, help="bytes")
    p.add_argument("--access_log", nargs="?", const="-", metavar="PATH",
                   help="log every request: JSON lines to PATH, or (no PATH) to stderr; default: failures only")
    p.add_argument("--access_log_max_mb", type=float, default=10.0,
                   help="rotate the access log to PATH.1 at this size (default 10)")
    p.add_argument("--follow", metavar="LINK",
                   help="serve the same variant from whatever release LINK points to (zero-downtime updates)")
    p.add_argument("--state", metavar="PATH", help="write the served release and port here (for deploy)")
    p.add_argument("--token", default=os.environ.get("EDGEKIT_TOKEN"),
                   help="shared secret required as 'Authorization: Bearer TOKEN' (env EDGEKIT_TOKEN)")
    p.add_argument("--runtime")
    task_flags(p)
    frame_flags(p)
    return parser
