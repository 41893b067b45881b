"""`make search`: the most accurate INT8 model that meets a board's budgets, found by measuring.

The search is an Optuna study (host/search/study.py); this module is its leader: it checks the
storage and the boards, creates (or re-opens) the study, runs WORKERS local workers
(host/search/worker.py: one in this process, the others as processes; more may join from other
hosts), and when the study has what it asked for, writes what the user sees: leaderboard.json (from
the study), pareto.png, the table, and the winner as a normal bundle.

The winner is picked among the finalists (trained, re-measured, within every budget) on
validation accuracy that survives the noise of one split (host/search/decide.py `select`): the
test split never picks a model. Resume is Optuna's: the same command continues the study; finished
trials are kept, and a trial whose worker died is re-queued with what it had measured.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from deploy.boards.fleet import say
from device.contract.fileio import atomic_write_text
from host.config import ARTIFACTS
from host.errors import HostError, Interrupted
from host.search import space as sp
from host.search import study as st
from host.search.board import BoardRun, on_board
from host.search.candidate import SCHEMA, Candidate, Leaderboard
from host.search.decide import one_kind, select
from host.search.stages import Request


TF_THREADS_ENV = "TF_NUM_INTRAOP_THREADS"


class NoWinner(HostError):
    """Nothing met every budget (one line naming the closest candidate): exit 1."""


__all__ = ["NoWinner", "Request", "run_search", "leaderboard"]


def boards_agree(req: Request) -> BoardRun:
    """Visit every board once (installing its runtime if needed); HOSTS= must be boards of one
    profile and runtime, or candidates measured on different boards could not be compared."""
    with ThreadPoolExecutor(max_workers=min(8, len(req.hosts))) as pool:
        return one_kind(req.hosts, list(pool.map(lambda h: on_board(h, req.options), req.hosts)))


def with_budgets(req: Request, board: BoardRun) -> Request:
    """The CLI's budgets, the profile's filling the gaps; none at all is bad input."""
    budgets = dict(req.budgets)
    for key, value in board.profile["budgets"].items():
        budgets.setdefault(key, value)
    if not budgets:
        raise sp.SearchError(f"no budget set: give at least one of MAX_P50_US, MAX_P99_US, MAX_RSS_MB, "
                             f"MAX_SIZE_KB, MIN_TOP1 (profile {board.profile['name']} has none)")
    return replace(req, budgets=budgets)


def leaderboard(study, req: Request, board: BoardRun, native: tuple) -> tuple[Leaderboard, Candidate | None]:
    """leaderboard.json's content from the study: every trial a candidate, the winner selected."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial"): t.number for t in trials if "failed_trial" in t.system_attrs}
    cands = []
    for t in trials:
        d = t.user_attrs.get("cand") or {"id": f"c{t.number:02d}",
                                         "config": st.config_of(t.params, native) if len(t.params) == len(st.KEYS) else {}}
        c = Candidate.from_dict(d)
        c.id, c.default = f"c{t.number:02d}", bool(t.user_attrs.get("default"))
        c.extra.update(trial=t.number, state=t.state.name, worker=t.user_attrs.get("worker"),
                       measured=t.user_attrs.get("measured", []))
        if t.user_attrs.get("ladder"):
            c.extra["ladder"] = t.user_attrs["ladder"]      # a step of the scaled default model
        if "failed_trial" in t.system_attrs:
            c.extra["retry_of"] = t.system_attrs["failed_trial"]
        if t.state == TrialState.FAIL and c.status != "failed":
            c.status, c.why = "failed", "its worker stopped mid-trial (Ctrl-C or died)"
        if t.state == TrialState.FAIL and t.number in retried:
            c.why += f"; re-queued as c{retried[t.number]:02d}"
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            c.status, c.why = "not reached", "still running or waiting when the search ended"
        cands.append(c)
    finalists = [c for c in cands if c.extra["state"] == "COMPLETE" and c.status == "finalist"]
    winner = select(finalists, req.budgets)
    front = {f"c{t.number:02d}" for t in study.best_trials}
    doc = {"schema": SCHEMA, "name": req.name, "plan": {**study.user_attrs.get("identity", {}), "trials": req.trials,
                                                         "max_trained": req.max_trained, "sampler": req.sampler},
           "storage": st.shown(st.storage_url(req.name, req.storage)), "objectives": dict(zip(st.OBJECTIVES, st.DIRECTIONS)),
           "budgets": req.budgets, "hosts": req.hosts, "board": board.board, "runtime": board.runtime,
           "profile": board.profile["name"], "selection": "INT8 validation top-1 over folds; ties (inside the "
                                                           "uncertainty) broken by p50 then size",
           "runs": study.user_attrs.get("runs", []), "candidates": None,
           "pareto": [c.id for c in cands if c.id in front], "winner": winner.id if winner else None}
    return Leaderboard(doc, cands), winner


def reference(lb: Leaderboard, dataset: str) -> dict:
    """The default model as the picture's reference point: its measured latency, and its accuracy
    from this search (if it was trained) or from the trained default bundle artifacts/<dataset>/."""
    default = next((c for c in lb.candidates if c.default), lb.candidates[0])
    ref = {"id": default.id, "p50_us": default.figures().get("p50_us"),
           "top1": (default.int8 or {}).get("host_top1"), "source": "this search"}
    bundle = ARTIFACTS / dataset.replace("/", "_").replace(":", "_") / "manifest.json"
    if ref["top1"] is None and bundle.is_file():
        m = json.loads(bundle.read_text())
        if m.get("dataset", {}).get("spec") == dataset and "int8" in m.get("variants", {}):
            ref.update(top1=m["variants"]["int8"]["host_top1"], source=str(bundle.parent))
    return ref


def run_search(req: Request) -> int:
    """Check the storage and the boards, run the workers, write the outputs; NoWinner when nothing fits."""
    from host.search import outputs
    from host.search.decide import closest
    from host.search.worker import Worker

    url = st.storage_url(req.name, req.storage)
    st.check_reachable(url)
    board = boards_agree(req)
    req = with_budgets(req, board)
    study, _ = st.open_studies(req, url, create=True)
    started, t0 = dt.datetime.now(), time.monotonic()
    threads = tf_threads(req.workers)
    use_tf_threads(threads)
    say(f"search {req.name}: study in {st.shown(url)}; {req.workers} worker(s) here"
        + (f" ({threads} TensorFlow thread(s) each)" if threads else "") + f", measuring on "
        f"{', '.join(req.hosts)}; up to {req.trials} trials, {req.max_trained} trainings")
    procs = spawn(url, req.name, req.workers - 1)
    leader = None
    try:
        leader = Worker(req, url, 0, leader=True)
        leader.run()
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        import signal

        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise Interrupted(f"interrupted: finished trials are kept in the study {req.name} ({st.shown(url)}); "
                          "run the same command to continue") from None
    if any(p.returncode for p in procs):
        say(f"search {req.name}: {sum(1 for p in procs if p.returncode)} worker process(es) failed; "
            "their trials were re-queued")
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_start >= started]
    runs = study.user_attrs.get("runs", []) + [{
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (time.monotonic() - t0))),
        "workers": req.workers, "bench_calls": sum(len(t.user_attrs.get("measured", [])) for t in trials),
        "trained": sum(1 for t in trials if t.user_attrs.get("trained")), "wall_s": round(time.monotonic() - t0, 1),
        "tf_threads_per_worker": threads or "default",
        "complete": not leader.out_of_time()}]
    study.set_user_attr("runs", runs)
    lb, winner = leaderboard(study, req, board, tuple(leader.ds.input_shape))
    lb.doc["reference"] = reference(lb, req.dataset)
    leader.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(leader.dir / "leaderboard.json", json.dumps(lb.to_dict(), indent=2))
    doc = lb.to_dict()
    outputs.print_summary(doc, lb.candidates, leader.dir)
    if winner is None:
        raise NoWinner(f"no candidate meets every budget; {closest(lb.candidates)}")
    if not (leader.dir / "cands" / winner.extra.get("same_as", winner.id) / "bundle").is_dir():
        raise HostError(f"winner {winner.id} was trained by worker {winner.extra.get('worker')}: its files are on "
                        f"that host; run `make search NAME={req.name} STORAGE=...` there to write the bundle")
    out = outputs.write_winner(leader, doc, winner)
    outputs.print_winner(winner, out, req.name)
    return 0


# ---- local worker processes (WORKERS=N) and how they share this machine's cores
def tf_threads(workers: int) -> int | None:
    """TensorFlow's intra-op threads for each of WORKERS local workers: the cores shared out, as two
    TensorFlow processes that each take every core fight over them (two 10-epoch trainings side by
    side on 2 cores: 33.6/36.5 s with TF's default threads, 27.2/28.2 s with one thread each).
    None: TF's own default (one worker, or the user chose with TF_NUM_INTRAOP_THREADS)."""
    if workers <= 1 or os.environ.get(TF_THREADS_ENV):
        return None
    return max(1, (os.cpu_count() or 1) // workers)


def use_tf_threads(n: int | None) -> None:
    """This process's TensorFlow trains on n intra-op threads (TF reads the variable when it starts;
    one already started in this process is told directly, which works until it has run an op)."""
    import sys

    if n is None:
        return
    os.environ[TF_THREADS_ENV] = str(n)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
        except RuntimeError:        # already running: it keeps its threads, and the search says so
            say(f"search: TensorFlow already started in this process; it keeps its threads (not {n})")


def spawn(storage: str, name: str, n: int) -> list:
    """n local worker processes (indices 1..n) for the study; they inherit this process's
    environment, TF_NUM_INTRAOP_THREADS (use_tf_threads) included."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    return [subprocess.Popen([sys.executable, "-m", "host", "search-worker", "--storage", storage, "--name", name,
                              "--index", str(i)], env=env, cwd=root) for i in range(1, n + 1)]
