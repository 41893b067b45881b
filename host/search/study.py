"""The search as an Optuna study: where it is stored, what it searches, what it optimises.

One study per search NAME, in one storage that every worker shares: by default the SQLite file
artifacts/search-NAME/study.db (one machine), or any SQLAlchemy URL (`STORAGE=postgresql://...`:
workers on several hosts). Beside it a companion study NAME.rungs holds the training runs, because
Optuna's pruners only judge single-objective studies and the search itself has three objectives
(INT8 validation top-1 up, p50 down, peak RSS down) with the board's budgets as constraints.

The space file stays the user's definition; each key becomes a categorical distribution. The
default model is always a candidate (trial 0, enqueued), so its values join each key's choices.
After it come the default model's scaled versions (`ladder`), then the sampler's draws.
A study remembers what it was created for (dataset, space, budgets, ...): a run asking for
something else under the same NAME is refused, naming both.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

from host.config import ARTIFACTS
from host.search import space as sp
from host.search.decide import BUDGETS

KEYS = ("alpha", "resolution", "stem_stride", "blocks", "kernel", "last_width", "stem_filters")
OBJECTIVES = ("INT8 validation top-1", "p50 us", "peak RSS MB")
DIRECTIONS = ("maximize", "minimize", "minimize")
SAMPLERS = ("tpe", "nsga2", "random")
# A worker's heartbeat: a trial whose worker stopped beating for GRACE seconds is failed and re-queued.
HEARTBEAT_S = float(os.environ.get("EDGEKIT_SEARCH_HEARTBEAT_S", "5"))
GRACE_S = float(os.environ.get("EDGEKIT_SEARCH_GRACE_S", "30"))
RUNG_WAIT_MIN_S = 30.0      # the least a run waits at the rung for one started before it (wait_at_rung)


def storage_url(name: str, storage: str | None) -> str:
    """The SQLAlchemy URL of the study: the default SQLite file, or the user's URL (postgresql://
    is read with psycopg 3, the driver the toolkit pins)."""
    if not storage:
        return f"sqlite:///{ARTIFACTS / f'search-{name}' / 'study.db'}"
    for plain, driver in (("postgresql://", "postgresql+psycopg://"), ("postgres://", "postgresql+psycopg://"),
                          ("mysql://", "mysql+pymysql://")):
        if storage.startswith(plain):
            return driver + storage[len(plain):]
    if storage.split("://")[0].split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        raise sp.SearchError(f"STORAGE={storage}: not a database URL (sqlite:///PATH, postgresql://USER@HOST/DB "
                             "or mysql://USER@HOST/DB)")
    return storage


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL too broken to parse is shown as typed
        return url


def engine(url: str):
    """A SQLAlchemy engine for the study's database (the board leases live there too); SQLite waits
    for a busy file instead of failing, a server that does not answer fails within seconds."""
    from sqlalchemy import create_engine

    if url.startswith("sqlite"):
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"timeout": 60})
    args = {"connect_timeout": 10} if url.startswith(("postgresql", "mysql")) else {}
    return create_engine(url, connect_args=args, pool_pre_ping=True)


def check_reachable(url: str) -> None:
    """One SearchError line naming the storage if it cannot be opened (before anything is measured)."""
    from sqlalchemy import text

    try:
        with engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - every driver has its own errors; all mean "unreachable"
        reason = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        raise sp.SearchError(f"storage {shown(url)} is unreachable: {reason[:200]}") from None


def quiet_optuna() -> None:
    """Optuna's log lines and its experimental-feature warnings (heartbeats) stay off the terminal:
    the search prints its own table."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def rdb(url: str, heartbeat: bool = True):
    """Optuna's storage; with heartbeats, a worker that dies mid-trial has that trial failed and
    re-queued (with the facts it had gathered, so nothing is measured twice). The rungs study's
    trials are driven by hand (ask/tell inside a search trial) and go without."""
    import optuna

    quiet_optuna()
    kw = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if not heartbeat:
        return optuna.storages.RDBStorage(url, engine_kwargs=kw)
    return optuna.storages.RDBStorage(
        url, engine_kwargs=kw, heartbeat_interval=int(max(1, HEARTBEAT_S)), grace_period=int(max(2, GRACE_S)),
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))


# ---- the space as distributions
def choices(space: sp.Space, native: tuple[int, int, int]) -> dict[str, list]:
    """Each key's choices: the file's, plus the default model's value when the file lacks it."""
    default = defaults()
    out = {"alpha": space.alpha, "resolution": space.resolution, "stem_stride": space.stem_stride,
           "blocks": [json.dumps(b) for b in space.blocks], "kernel": space.kernel,
           "last_width": space.last_width, "stem_filters": space.stem_filters}
    return {k: list(v) + ([default[k]] if default[k] not in v else []) for k, v in out.items()}


def defaults() -> dict:
    """The default model as a point of the space (host/config.py's architecture)."""
    cfg = sp.default_config((28, 28, 1))
    return {"alpha": cfg["alpha"], "resolution": 1.0, "stem_stride": cfg["stem_stride"],
            "blocks": json.dumps([list(b) for b in cfg["blocks"]]), "kernel": cfg["kernel"], "last_width": None,
            "stem_filters": cfg["stem_filters"]}


def ladder(space: sp.Space) -> list[dict]:
    """The default model scaled down by MobileNet's two knobs, width (alpha) and input resolution, at
    the space's values, largest first (cost ~ alpha^2 x resolution^2, as in the MobileNet paper;
    ties: the larger input first). Enqueued after the default model: the first step that fits the
    budgets is trained and the smaller steps after it are skipped (host/search/worker.py). Why: a
    sampler's first draws are random, and most are small models far inside the budget; the scaled
    default is the strong baseline a user would try by hand, and a steady one (mnist5k, three seeds
    each: the step that fits 0.4x of the default's p50, a0.5 at 28 px, 97.8-98.0 % on test; the
    14 px model the search had drawn and picked there, 96.5-98.0 %)."""
    base = defaults()
    steps = {(a, r) for a in space.alpha for r in space.resolution} - {(base["alpha"], 1.0)}
    return [{**base, "alpha": a, "resolution": r}
            for a, r in sorted(steps, key=lambda ar: (-(ar[0] * ar[1]) ** 2, -ar[1]))]


def distributions(space: sp.Space, native: tuple[int, int, int]) -> dict:
    import optuna

    return {k: optuna.distributions.CategoricalDistribution(v) for k, v in choices(space, native).items()}


def config_of(params: dict, native: tuple[int, int, int]) -> dict:
    """A trial's parameters as builder arguments (as the space file describes them)."""
    blocks = [list(b) for b in json.loads(params["blocks"])]
    if params["last_width"] is not None:
        widest = max(b[0] for b in blocks)
        blocks = [[params["last_width"] if b[0] == widest else b[0], *b[1:]] for b in blocks]
    cfg = {"alpha": params["alpha"], "input": sp.input_at(native, params["resolution"]), "blocks": blocks,
           "kernel": params["kernel"], "stem_filters": params["stem_filters"], "stem_stride": params["stem_stride"]}
    if min(cfg["input"][:2]) < 16:      # the builder keeps small inputs at stride 1
        cfg["stem_stride"] = 1
    return cfg


def suggest(trial, space: sp.Space, native: tuple[int, int, int]) -> dict:
    params = {k: trial.suggest_categorical(k, v) for k, v in choices(space, native).items()}
    return config_of(params, native)


# ---- objectives and constraints
def excesses(budgets: dict, figures: dict) -> list[float]:
    """One number per budget (sorted by key), > 0 when broken: the relative excess, Optuna's
    constraint convention. A figure not measured yet counts as met."""
    out = []
    for key in sorted(budgets):
        fig, _, _, kind = BUDGETS[key]
        value, limit = figures.get(fig), budgets[key]
        if value is None or not limit:
            out.append(0.0)
        else:
            out.append(((value - limit) if kind == "max" else (limit - value)) / abs(limit))
    return out


def constrain(trial, budgets: dict) -> None:
    """The trial's constraints (Optuna's set_constraint, once, when the trial ends): its judged
    figures (user attr "figures") against each budget. Pruned trials get them too, so a candidate
    over budget by its untrained measurement is infeasible in the study's own bookkeeping."""
    figures = trial.user_attrs.get("figures", {})
    for key, value in zip(sorted(budgets), excesses(budgets, figures)):
        trial.set_constraint(key, value)


def sampler(kind: str, seed: int, worker: int = 0):
    """The study's sampler (each worker builds its own; a different seed per worker, or two
    workers would draw the same first candidates). TPE and NSGA-II read the trials' constraints."""
    import optuna

    s = seed + 1000 * worker
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s, population_size=8)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=s)
    return optuna.samplers.TPESampler(seed=s, n_startup_trials=6, multivariate=True, group=True)


def first_rung(epochs: int) -> int:
    """The epoch at which the pruner judges a training run: a ninth of EPOCHS."""
    return max(1, round(epochs / 9))


def pruner(epochs: int):
    """Successive halving from a ninth of EPOCHS (reduction factor 3): a training run goes on past a
    rung only if it is in the best third of the runs that reached it (the first ones, with nobody to
    compare with, go on if they are the best so far). The workers report up to the first rung only
    (report_epoch below), so that is the one cut made; there a run is also halted when a faster one
    as accurate goes on (decide.py dominated_at_cut)."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung(epochs), reduction_factor=3)


def report_epoch(rt, state: dict, val_accuracy: float, last: int | None = None, wait=None, rivals=None) -> bool:
    """Report one finished epoch to the rungs trial `rt`; True when the run is halted at the rung.

    What is reported is the best validation accuracy so far, not this epoch's: one epoch's dip on
    a small split (500 images: a standard error is ~0.6 pp) must not halt a model that had reached
    more. Epochs after `last` (the first rung) are not reported: a run past the first cut trains to
    the end, because a second cut at a third of EPOCHS stopped models that learn slower and end
    higher (mnist5k at 0.4x, WORKERS=2, two runs: the WORKERS=1 winner, 97.5 % on test, halted at
    epoch 12 behind a model that ended 1 pp lower); the finalists' folds then decide. At `last`,
    `wait()` first (study.py wait_at_rung: the runs started before this one report there too); a
    run the pruner lets go on is still halted if `rivals(best)` names a reason (decide.py
    dominated_at_cut). state["why"] says why a run was halted."""
    state["epochs"] += 1
    state["best"] = max(state["best"], val_accuracy)
    if last is not None and state["epochs"] > last:
        return False
    if wait is not None and state["epochs"] == last:
        wait()
    rt.report(state["best"], state["epochs"])
    halt = rt.should_prune()
    if halt:
        state["why"] = f"val top-1 {100 * state['best']:.2f} % fell behind at epoch {state['epochs']}"
    elif rivals is not None and state["epochs"] == last:
        state["why"] = rivals(state["best"]) or ""
        halt = bool(state["why"])
    if state["epochs"] == last:
        rt.set_user_attr("judged_at", last)     # its figure is now one the later runs are compared with
        rt.set_user_attr("went_on", not halt)
    return halt


def rung_rivals(rungs, rt, step: int) -> list[dict]:
    """The runs past the rung `step` so far (judged there and not halted), with the p50 and size
    their workers recorded, for decide.py dominated_at_cut."""
    from optuna.trial import TrialState

    return [{"id": t.user_attrs.get("candidate"), "val": t.intermediate_values[step],
             "p50_us": t.user_attrs["p50_us"], "size_kb": t.user_attrs["size_kb"]}
            for t in rungs.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
            if t.number != rt.number and t.user_attrs.get("went_on") and step in t.intermediate_values
            and "p50_us" in t.user_attrs]


def wait_at_rung(rungs, rt, step: int, since: float, study=None) -> float:
    """Before the run `rt` is judged at the rung `step`: wait until every run started before it
    and still training has reported there too (seconds waited). Successive halving promotes the
    first runs to reach a rung if they are the best so far, with nobody to compare with; with
    several workers that was order, not merit: a second worker's small draws reached the rung
    before the ladder step beside them, went on alone and were trained to the end with their folds
    (mnist5k at 0.4x, WORKERS=2: two of them, halved at the rung in the WORKERS=1 run). A run
    whose worker died is not waited for once the search `study` has failed its trial (heartbeats),
    and never more than twice this run's own time to the rung (RUNG_WAIT_MIN_S at least)."""
    import time

    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    t0 = time.monotonic()
    cap = max(RUNG_WAIT_MIN_S, 2 * (t0 - since))
    while time.monotonic() - t0 < cap:
        if study is not None:
            fail_stale_trials(study)
            live = {f"c{t.number:02d}" for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if not any(t.number < rt.number and t.user_attrs.get("judged_at") != step
                   and (study is None or t.user_attrs.get("candidate") in live)
                   for t in rungs.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
            break
        time.sleep(0.5)
    return time.monotonic() - t0


# ---- the study's identity
def identity(req) -> dict:
    """What makes two runs the same search (trials, workers, hosts and time may change)."""
    space = sp.load_space(req.space)
    return {"dataset": req.dataset, "space": str(req.space), "space_sha256": space.digest, "epochs": req.epochs,
            "threads": req.threads, "calibration": req.calibration, "budgets": dict(sorted(req.budgets.items())),
            "folds": req.folds}


def describe(ident: dict) -> str:
    b = ", ".join(f"{k}={v:g}" for k, v in ident.get("budgets", {}).items())
    return (f"dataset {ident.get('dataset')}, space {ident.get('space')} (sha256 {ident.get('space_sha256')}), "
            f"epochs {ident.get('epochs')}, threads {ident.get('threads')}, budgets {b or '-'}")


def open_studies(req, url: str, create: bool, sampler=None):
    """(the search study, its rungs study). A new study gets its identity, the request the workers
    read, and the default model as trial 0; an existing one must have been made for the same search."""
    import optuna

    storage = rdb(url)
    ident = identity(req)
    if create:
        study = optuna.create_study(storage=storage, study_name=req.name, directions=list(DIRECTIONS),
                                    load_if_exists=True, sampler=sampler)
        old = study.user_attrs.get("identity")
        if old is None:
            study.set_metric_names(list(OBJECTIVES))
            study.set_user_attr("identity", ident)
            study.set_user_attr("uid", uuid.uuid4().hex)      # this study, not another made later under its NAME
            study.set_user_attr("request", request_doc(req))
            study.enqueue_trial(defaults(), user_attrs={"default": True, "ladder": 0})
            for step, params in enumerate(ladder(sp.load_space(req.space)), 1):
                study.enqueue_trial(params, user_attrs={"ladder": step})
        elif old != ident:
            raise sp.SearchError(f"study {req.name} in {shown(url)} was made for {describe(old)}; this run asks "
                                 f"for {describe(ident)}: choose another NAME= or delete the study")
        else:
            study.set_user_attr("request", request_doc(req))
    else:
        try:
            study = optuna.load_study(study_name=req.name, storage=storage, sampler=sampler)
        except KeyError:
            raise sp.SearchError(f"no study {req.name} in {shown(url)}: start it with `make search NAME={req.name} "
                                 "STORAGE=...` first") from None
    rungs = optuna.create_study(storage=rdb(url, heartbeat=False), study_name=f"{req.name}.rungs", direction="maximize",
                                load_if_exists=True, pruner=pruner(req.epochs))
    return study, rungs


def request_doc(req) -> dict:
    """The request as JSON (a worker on another host reads what to do from the study)."""
    d = asdict(req)
    d["space"] = str(req.space)
    d["options"] = {k: v for k, v in asdict(req.options).items() if k in ("profile", "ssh_key", "trust_new_host")}
    return d
