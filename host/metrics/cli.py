"""`python -m host score` (`make score`, and `make bench` for a detector / pose / segmentation bundle): the task's
metric of agent results on an evaluation set, the board's beside the host's."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from host.errors import UsageError


def add_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument("items", nargs="*", metavar="EVAL|RESULT.json",
                   help="EVAL (coco:JSON[:IMAGES] | yolo:PATH | masks:IMAGES:MASKS) then `python -m device infer "
                        "--json` files, the board's first; or, with --bundle, a stored `make bench` result")
    c.add_argument("--bundle", help="the task bundle a bench result belongs to (its EVAL= set and host predictions)")
    c.add_argument("--newest", action="store_true",
                   help="with --bundle and no result (the default then): score every board's newest bench of it; "
                        "--newest (make bench) also skips quietly "
                        "a bundle without a detection / pose / mask / npz set")
    c.add_argument("--json", metavar="PATH", help="also write the scores here")


def _figures(s: dict | None) -> str:
    """The flat figures of a score on one line; per-class IoU (keyed by label name) after them."""
    if not s:
        return "–"
    head = {k: v for k, v in s.items() if not isinstance(v, (dict, list))}
    line = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) and "error" in k else
                     f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in head.items())
    per_class = s.get("per_class") or {}
    if per_class:
        line += "; IoU " + ", ".join(f"{k} {'–' if v is None else f'{v:.4f}'}" for k, v in per_class.items())
    return line


def _score_newest(bundle: Path, quiet: bool = True) -> int:
    """After `make bench`: the board's mAP (OKS AP, mIoU; a raw model's output errors and top-1)
    beside the host's for each board's newest bench of a task bundle; nothing for other bundles."""
    from host.metrics.results import score_bench
    from host.report.build import load_results

    manifest_path = bundle / "manifest.json"
    if quiet and (not manifest_path.is_file() or
                  (json.loads(manifest_path.read_text()).get("eval") or {}).get("kind") not in ("images", "tensors")):
        return 0
    docs, _ = load_results()
    mine = [(path, doc) for path, doc in docs if (doc.get("deploy") or {}).get("bundle") == bundle.name]
    if not mine and not quiet:
        raise UsageError(f"no stored bench of {bundle.name} (make bench BUNDLE={bundle} first, or give RESULTS=)")
    for path, doc in mine:
        scores = score_bench(str(path), bundle)
        board = doc["deploy"]["host"]
        for variant, s in scores["variants"].items():
            print(f"{board} {variant} {scores['task']}: board {_figures(s['board'])}")
            print(f"{board} {variant} {scores['task']}: host  {_figures(s['host'])}")
            if s["agreement"]:
                print(f"{board} {variant} board vs host: {_figures(s['agreement'])}")
    return 0


def run(args: argparse.Namespace) -> int:
    from device.contract.fileio import atomic_write_text
    from host.metrics.results import score, score_bench

    if args.bundle and (args.newest or not args.items):
        return _score_newest(Path(args.bundle), quiet=args.newest)
    if args.bundle:
        if len(args.items) != 1:
            raise UsageError("with --bundle give one stored bench result (results/<host>/<file>.json)")
        scores = score_bench(args.items[0], Path(args.bundle))
        for variant, s in scores["variants"].items():
            print(f"{variant}: board {_figures(s['board'])}")
            print(f"{' ' * len(variant)}  host  {_figures(s['host'])}")
            if s["agreement"]:
                print(f"{' ' * len(variant)}  board vs host: {_figures(s['agreement'])}")
    else:
        if len(args.items) < 2:
            raise UsageError("give EVAL and at least one infer result (or --bundle with a bench result)")
        scores = score(args.items[0], args.items[1:])
        for path, s in scores["results"].items():
            print(f"{path}: {_figures(s)}")
        if "agreement" in scores:
            print(f"board vs host: {_figures(scores['agreement'])}")
    if args.json:
        atomic_write_text(args.json, json.dumps(scores, indent=2))
    return 0
