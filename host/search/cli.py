"""`python -m host search ...` and `python -m host search-perf`: arguments in, typed errors out
(host/errors.py; host/__main__.py prints them as one line)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from host.config import ARTIFACTS, DEFAULTS, REPORTS, add_flag
from host.errors import HostError, UsageError

# The perf target is "at most 20 minutes": the search gets 18 and stops gracefully (finalising what
# it has), leaving time for the finalists' re-measurement and the winner's bundle.
TIME_BUDGET_MIN = 18.0
BUDGET_FLAGS = (("--max-p50-us", "max_p50_us"), ("--max-p99-us", "max_p99_us"), ("--max-rss-mb", "max_peak_rss_mb"),
                ("--max-size-kb", "max_size_kb"), ("--min-top1", "min_top1"))
# dest -> (the flag the user typed, lowest value)
AT_LEAST = {"trials": ("--trials", 1), "max_trained": ("--max-trained", 1), "epochs": ("--epochs", 1),
            "threads": ("--num_threads", 1), "workers": ("--workers", 1), "folds": ("--folds", 0)}

SEARCH_HELP = "the most accurate INT8 model within a board's budgets, measured on the board"
PERF_HELP = "the model search's figures on mnist5k/HOST=local -> reports/perf.json"


def add_arguments(s: argparse.ArgumentParser) -> None:
    """`search`'s flags; the board flags are spelled as deploy's (the Makefile's TARGET_FLAGS)."""
    from host.search.space import DEFAULT_SPACE

    s.add_argument("--dataset", default=DEFAULTS.dataset)
    s.add_argument("--name", default=None, help="winner bundle artifacts/NAME (default DATASET-best); "
                                                "leaderboard in artifacts/search-NAME")
    s.add_argument("--host", default="local")
    s.add_argument("--hosts", help="a,b,c or @fleet.txt: candidates spread over boards of one profile")
    s.add_argument("--profile", help="board profile name or path (default: deploy's choice for the board)")
    s.add_argument("--ssh-key")
    s.add_argument("--trust-new-host", action="store_true")
    for flag, key in BUDGET_FLAGS:
        s.add_argument(flag, dest=key, type=float, help=f"budget {key} (default: the profile's)")
    add_flag(s, "--num_threads", "--threads", dest="threads", type=int, default=1, metavar="N",
             help="interpreter threads on the board")
    s.add_argument("--trials", type=int, default=36,
                   help="trials of the study: candidates measured untrained (c00 = default model); a resumed "
                        "study runs up to this many in all")
    s.add_argument("--max-trained", type=int, default=8,
                   help="the search stops after this many trainings (the pruner stops the laggards early)")
    s.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                   help="epochs of a full training (default: the default model's); the pruner judges at a ninth")
    add_study_flags(s)
    s.add_argument("--workers", type=int, default=1, help="local worker processes")
    s.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe",
                   help="the study's sampler (multi-objective TPE with the budgets as constraints)")
    s.add_argument("--folds", type=int, default=3,
                   help="finalists re-validated on this many folds of train+validation (0: the one split)")
    s.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    s.add_argument("--time-budget-min", type=float, help="stop gracefully after this many minutes")
    add_flag(s, "--calib_n", "--calibration-samples", dest="calibration_samples", type=int, metavar="N",
             default=DEFAULTS.calibration_samples, help="calibration images for the finalists' INT8")


def add_study_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--storage", help="the study's database: postgresql://USER@HOST/DB, mysql://..., sqlite:///PATH "
                                     "(default: artifacts/search-NAME/study.db)")


def add_worker_arguments(s: argparse.ArgumentParser) -> None:
    """`search-worker`'s flags: the study to join; everything else is read from the study."""
    s.add_argument("--name", required=True, help="the search's NAME")
    add_study_flags(s)
    s.add_argument("--hosts", help="this worker's boards (a,b,c or @fleet.txt; default: the study's)")
    s.add_argument("--index", type=int, default=-1,
                   help="worker number, seeds its sampler (default: derived from this host and process)")


def run_worker(args: argparse.Namespace) -> int:
    """`python -m host search-worker`: join a running search's study."""
    from host.search.board import parse_hosts
    from host.search.worker import work

    hosts = parse_hosts(None, args.hosts) if args.hosts else None
    try:
        return work(args.storage, args.name, hosts, args.index)
    except KeyboardInterrupt:
        from host.errors import Interrupted

        raise Interrupted("interrupted: the running trial was marked failed; finished trials are kept") from None


def run(args: argparse.Namespace) -> int:
    """`python -m host search`: check the numbers, read the hosts, run the search."""
    from deploy.boards.session import Options
    from host.search.board import BoardFailure, parse_hosts
    from host.search.run import Request, run_search

    for key, (flag, low) in AT_LEAST.items():
        if getattr(args, key) < low:
            raise UsageError(f"{flag} must be >= {low}")
    if args.time_budget_min is not None and args.time_budget_min <= 0:
        raise UsageError("TIME_BUDGET_MIN must be > 0")
    hosts = parse_hosts(args.host, args.hosts)
    name = args.name or f"{args.dataset.replace('/', '_').replace(':', '_')}-best"
    budgets = {key: getattr(args, key) for _, key in BUDGET_FLAGS if getattr(args, key) is not None}
    req = Request(args.dataset, name, hosts, budgets,
                  Options(profile=args.profile, ssh_key=args.ssh_key, trust_new_host=args.trust_new_host), threads=args.threads,
                  trials=args.trials, max_trained=args.max_trained, epochs=args.epochs, space=args.space,
                  time_budget_min=args.time_budget_min,
                  calibration=args.calibration_samples, storage=args.storage, workers=args.workers,
                  sampler=args.sampler, folds=args.folds)
    try:
        return run_search(req)
    except BoardFailure as e:
        if e.exit_code == UsageError.exit_code:
            raise UsageError(str(e)) from None
        raise HostError(f"{e} (finished candidates are kept; the same command continues)") from None


def run_perf(args: argparse.Namespace) -> int:
    """`python -m host search-perf`."""
    return perf()


# The search before it ran on Optuna (README, mnist5k at half the default p50): 8 candidates trained at
# 4 epochs, 4 at 13, 2 at 40 before the winner could be named: 14 trainings, 164 epochs.
OLD_SEARCH = {"trainings": 14, "epochs": 8 * 4 + 4 * 13 + 2 * 40, "source": "README search-perf run, 9.5 min"}
PERF_BUDGETS = (0.4, 0.5)           # of the default model's measured p50
PERF_WORKERS = (1, 2)               # wall-time ratio measured at the first budget


def perf(dataset: str = "mnist5k") -> int:
    """At 0.4x and 0.5x of the default model's measured INT8 p50 (1 thread, HOST=local): does the
    search find a model within the budget, within 1.0 pp of the default's top-1, in at most 20
    minutes? At the first budget the same search also runs with WORKERS=2 (side by side in this
    one run: the wall-time ratio), and each search counts the trainings made before its winner
    was found, against the old search's. Cold runs: fresh studies."""
    import optuna

    from deploy.boards.session import Options
    from host.search.board import bench_settings, on_board

    bundle = ARTIFACTS / dataset
    if not (bundle / "manifest.json").is_file():
        raise UsageError(f"no default bundle at {bundle}: run `make train quantize` first")
    manifest = json.loads((bundle / "manifest.json").read_text())
    default_top1 = manifest["variants"]["int8"]["host_top1"]
    load_before = os.getloadavg()
    board = on_board("local", Options())
    ref = on_board("local", Options(), [bundle / "int8.tflite"], bench_settings(board.profile["bench"], 1))
    default_p50 = next(iter(ref.bench.values()))["p50_us"]
    runs = []
    for frac in PERF_BUDGETS:
        for workers in (PERF_WORKERS if frac == PERF_BUDGETS[0] else PERF_WORKERS[:1]):
            runs.append(_perf_search(dataset, round(frac * default_p50, 2), frac, workers, default_top1))
    w1, w2 = runs[0], runs[1]
    ratio = round(w2["wall_s"] / w1["wall_s"], 3) if w1["wall_s"] else None
    fig = {"dataset": dataset, "host": "local", "threads": 1, "default_int8_p50_us": default_p50,
           "default_int8_top1": default_top1, "searches": runs, "workers_wall_ratio": ratio,
           "workers_ratio_target": 0.75, "old_search": OLD_SEARCH,
           "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "cpu_count": os.cpu_count(), "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "optuna": optuna.__version__}
    fig["target_met"] = bool(all(r["target_met"] for r in runs) and ratio is not None and ratio <= 0.75)
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / "perf.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc["search"] = fig
    from device.contract.fileio import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2))
    print(f"\nsearch perf (cold; machine load {load_before[0]:.1f} on {os.cpu_count()} cores before): default INT8 "
          f"p50 {default_p50:.1f} us, top-1 {100 * default_top1:.2f} %")
    for r in runs:
        print(f"  budget {r['budget_max_p50_us']:g} us ({r['budget_fraction']:g}x), WORKERS={r['workers']}: "
              + (f"winner {r['winner']} p50 {r['winner_p50_us']:.1f} us, top-1 {r['delta_top1_pp']:+.2f} pp"
                 if r.get("winner") else "no winner")
              + f"; {r['trainings_before_winner']} trainings before the winner (old search: {OLD_SEARCH['trainings']}); "
              f"{r['wall_s'] / 60:.1f} min (load {r['load_avg_before'][0]:.1f} -> {r['load_avg_after'][0]:.1f}); "
              f"{'met' if r['target_met'] else 'MISSED'}")
    print(f"  WORKERS=2 / WORKERS=1 wall time: {ratio} (target <= 0.75); target {'met' if fig['target_met'] else 'MISSED'}"
          f"\nwritten: {path}")
    return 0


def _perf_search(dataset: str, budget: float, frac: float, workers: int, default_top1: float) -> dict:
    """One cold search at one budget and worker count, as `make search` runs it (its own process, so
    each search's TensorFlow starts with the threads its WORKERS give it): its figures for
    reports/perf.json. No winner is a figure too: the target is missed, the other searches still run."""
    import subprocess
    import sys

    name = f"perf-{int(round(100 * frac))}-w{workers}"
    shutil.rmtree(ARTIFACTS / f"search-{name}", ignore_errors=True)
    load_before = os.getloadavg()       # per search: the machine is shared, and its load moves within one run
    t0 = time.monotonic()
    code = subprocess.run([sys.executable, "-m", "host", "search", "--dataset", dataset, "--name", name,
                           "--host", "local", "--max-p50-us", str(budget), "--num_threads", "1",
                           "--time-budget-min", str(TIME_BUDGET_MIN), "--workers", str(workers)],
                          cwd=Path(__file__).resolve().parents[2]).returncode
    wall = time.monotonic() - t0
    board = ARTIFACTS / f"search-{name}" / "leaderboard.json"
    if not board.is_file():
        raise HostError(f"search {name} wrote no leaderboard (exit {code}); its output is above")
    lb = json.loads(board.read_text())
    fig = {"name": name, "budget_fraction": frac, "budget_max_p50_us": budget, "workers": workers,
           **search_figures(lb, default_top1), "wall_s": round(wall, 1), "exit_code": code,
           "tf_threads_per_worker": (lb.get("runs") or [{}])[-1].get("tf_threads_per_worker"),
           "load_avg_before": [round(x, 2) for x in load_before],
           "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    fig["target_met"] = bool(fig.get("winner") and fig["winner_p50_us"] <= budget and fig["delta_top1_pp"] >= -1.0
                             and wall <= 1200)
    return fig


def search_figures(lb: dict, default_top1: float) -> dict:
    """A finished search's counts and winner from its leaderboard. A training is a trial that ran
    its own (a trial that drew a model another trial had trained reuses that run: `same_as`, not
    counted); "before the winner" means trials up to the winner's number (the order the sampler
    drew them), the winner's own training included; each finalist's fold re-trainings are counted
    apart, as the old search had none."""
    cands = lb["candidates"]
    win = next((c for c in cands if c.get("status") == "winner"), None)
    trained = [c for c in cands if c.get("train") and not c.get("same_as")]
    before = [c for c in trained if win and c["trial"] <= win["trial"]]
    folds = lambda cs: sum(len((c.get("int8") or {}).get("folds") or []) for c in cs)  # noqa: E731
    fig = {"trials": len(cands), "measured": sum(len(c.get("measured", [])) for c in cands),
           "trained": len(trained), "fold_trainings": folds(trained), "trainings_before_winner": len(before),
           "epochs_before_winner": sum(next(iter(c["train"].values()))["epochs_run"] for c in before),
           "fold_trainings_before_winner": folds(before), "winner": None}
    if win:
        fig.update(winner=win["id"], winner_config=win["config"], winner_p50_us=win["final"]["p50_us"],
                   winner_int8_top1=win["int8"]["host_top1"], winner_device_top1=win["final"].get("device_top1"),
                   winner_val_interval=win.get("val_interval"),
                   delta_top1_pp=round(100 * (win["int8"]["host_top1"] - default_top1), 2))
    return fig
