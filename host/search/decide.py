"""The search's decisions on figures, as pure functions: which budgets a candidate breaks, which
finalist wins (accuracy with its uncertainty, ties broken by latency and size), and which candidate
came closest when nothing met every budget. No training, no board, no files. (Which candidates
are tried and which training runs stop early is the study's sampler and pruner.)"""
from __future__ import annotations

import math

from host.search import space as sp
from host.search.board import BoardRun
from host.search.candidate import Candidate

# p50s closer than this (relative) are a tie: the default model's INT8 file measured 96.1-104.6 us (9 %)
# in the searches of one `make search-perf` run on a loaded machine, ~0.3 % apart on a quiet one.
LATENCY_TIE = 0.05
# budget key -> (figure it limits, label, unit, "max" or "min"); the CLI/Makefile names map here.
BUDGETS = {"max_p50_us": ("p50_us", "p50", "us", "max"), "max_p99_us": ("p99_us", "p99", "us", "max"),
           "max_peak_rss_mb": ("peak_rss_mb", "peak RSS", "MB", "max"),
           "max_size_kb": ("size_kb", "INT8 size", "KB", "max"), "min_top1": ("top1", "on-device top-1", "", "min")}


def broken(budgets: dict, figures: dict) -> list[dict]:
    """Every budget the figures break: [{"budget", "value", "limit", "text"}]; unknown figures pass."""
    out = []
    for key, limit in budgets.items():
        fig, label, unit, kind = BUDGETS[key]
        value = figures.get(fig)
        if value is None:
            continue
        if (value > limit) if kind == "max" else (value < limit):
            shown = f"{100 * value:.2f} %" if fig == "top1" else f"{value:.1f} {unit}"
            limit_s = f"{100 * limit:.2f} %" if fig == "top1" else f"{limit:g} {unit}"
            out.append({"budget": key, "value": value, "limit": limit,
                        "text": f"{label} {shown} {'>' if kind == 'max' else '<'} budget {limit_s}"})
    return out


def excess(b: dict) -> float:
    """How far past its budget a figure is, relative (0.1 = 10 % over)."""
    return abs(b["value"] - b["limit"]) / abs(b["limit"]) if b["limit"] else math.inf


def one_kind(hosts: list[str], runs: list[BoardRun]) -> BoardRun:
    """The first board, if every board has its profile and runtime; else one SearchError line naming
    each board's kind (figures from different kinds of boards cannot be compared)."""
    kinds = {(r.profile["name"], r.runtime) for r in runs}
    if len(kinds) > 1:
        raise sp.SearchError("HOSTS= must be boards of one profile and runtime: "
                             + ", ".join(f"{h} is {r.profile['name']} ({r.runtime})" for h, r in zip(hosts, runs))
                             + "; set PROFILE= or search one kind of board at a time")
    return runs[0]


def binomial_se(p: float, n: int) -> float:
    """The standard error of an accuracy p measured on n images, sqrt(p(1-p)/n) (0 without images)."""
    return math.sqrt(p * (1 - p) / n) if n else 0.0


def accuracy(c: Candidate) -> tuple[float, float]:
    """(mean validation top-1, its standard error): over the folds the finalist was re-validated on
    (host/search/worker.py), else the one validation split's binomial error sqrt(p(1-p)/n)."""
    folds = (c.int8 or {}).get("folds") or []
    if len(folds) >= 2:
        mean = sum(folds) / len(folds)
        sd = math.sqrt(sum((f - mean) ** 2 for f in folds) / (len(folds) - 1))
        n = (c.int8 or {}).get("folds_n") or 0          # images scored over all folds
        binom = binomial_se(mean, n)
        return mean, max(sd / math.sqrt(len(folds)), binom)
    p, n = c.int8["val_top1"], (c.int8 or {}).get("val_n") or 0
    return p, binomial_se(p, n)


def select(finalists: list[Candidate], budgets: dict) -> Candidate | None:
    """The winner among finalists within every budget: the most accurate on validation, except that
    a difference smaller than one standard error of the difference is a tie (the one-standard-error
    rule: on 500 validation images one error is ~0.6 pp, so 98.4 % vs 97.6 % is noise), and ties go to
    the lower p50, then the smaller INT8 file, then the higher accuracy. A p50 within LATENCY_TIE of
    the fastest is as fast: latency has its noise too, and a 0.1 us lead once picked a model 1.3 pp
    worse on test (mnist5k, WORKERS=2: 33.3 vs 33.4 us, 566 vs 162 KB). Each finalist's `why` gives
    its accuracy and interval."""
    ok = [c for c in finalists if c.status == "finalist"]
    if not ok:
        return None
    acc = {c.id: accuracy(c) for c in ok}
    best = max(ok, key=lambda c: acc[c.id][0])
    m0, s0 = acc[best.id]
    tied = [c for c in ok if m0 - acc[c.id][0] <= math.sqrt(s0 ** 2 + acc[c.id][1] ** 2)]
    p50 = {c.id: c.final.get("p50_us") or math.inf for c in tied}
    fastest = min(p50.values())
    quick = [c for c in tied if p50[c.id] <= fastest * (1 + LATENCY_TIE)]
    winner = min(quick, key=lambda c: (c.int8["size_bytes"], -acc[c.id][0], c.id))
    for c in ok:
        m, s = acc[c.id]
        shown = f"val top-1 {100 * m:.2f} ± {196 * s:.2f} % (95 %)"
        c.extra["val_interval"] = [round(m - 1.96 * s, 5), round(m + 1.96 * s, 5)]
        if c is winner:
            c.status = "winner"
            c.why = f"{shown}; " + ("most accurate within every budget" if c is best else
                                   f"tied with {best.id} within one standard error, and "
                                   + ("faster" if p50[best.id] > fastest * (1 + LATENCY_TIE) else
                                      f"as fast (p50 within {100 * LATENCY_TIE:.0f} %) and smaller"))
        elif c in quick:
            c.why = f"{shown}; tied with {winner.id} within one standard error and as fast, larger"
        elif c in tied:
            c.why = f"{shown}; tied with {winner.id} within one standard error, slower"
        else:
            c.why = f"{shown}; below {best.id} by more than one standard error"
    return winner


def out_of_reach(c: Candidate, rivals: list[Candidate]) -> str | None:
    """Why a new finalist's fold re-trainings (each one a full training) would be spent for nothing:
    its one-split accuracy is below a finalist already re-validated on folds by more than two
    standard errors of the difference, so its folds could not even bring it to a tie. None: it
    could still win, and gets its folds."""
    m, s = accuracy(c)
    for r in rivals:
        if r.id == c.id or r.status != "finalist" or len((r.int8 or {}).get("folds") or []) < 2:
            continue
        mr, sr = accuracy(r)
        if mr - m > 2 * math.sqrt(s ** 2 + sr ** 2):
            return (f"val top-1 {100 * m:.2f} % is {100 * (mr - m):.2f} pp below {r.id}'s {100 * mr:.2f} % "
                    "(more than two standard errors): not re-validated on folds")
    return None


def dominated_at_cut(run: dict, rivals: list[dict], n: int) -> str | None:
    """Why a run the pruner lets past the cut is halted there all the same (None: it goes on).
    Each run is {"id", "val" (best validation top-1 at the cut), "p50_us", "size_kb"}; `rivals`
    are the runs already past the cut, `n` the validation images behind each figure.

    Successive halving ranks on accuracy alone, but the winner is chosen on accuracy with ties
    broken by latency and size (select above): a run as fast or faster than one going on (or as
    fast, p50 within LATENCY_TIE, and no larger) can only lose to it unless it ends clearly more
    accurate, and a run no more than one standard error of the difference ahead at the cut shows
    nothing of that. Going on would cost a full training and its folds. (Multi-objective halving
    promotes on Pareto rank for the same reason.) Seen on mnist5k at 0.4x, WORKERS=2: a 14-px model
    3 images ahead of the 28-px winner at epoch 4 trained to the end with three folds, and lost."""
    for r in rivals:
        noise = math.hypot(binomial_se(run["val"], n), binomial_se(r["val"], n))   # of the difference
        if r["id"] == run["id"] or run["val"] - r["val"] > noise:
            continue
        faster = r["p50_us"] * (1 + LATENCY_TIE) < run["p50_us"]
        if faster or (r["p50_us"] <= run["p50_us"] * (1 + LATENCY_TIE) and r["size_kb"] <= run["size_kb"]):
            return (f"val top-1 {100 * run['val']:.2f} % at the cut, not ahead of {r['id']}'s {100 * r['val']:.2f} % "
                    f"by more than one standard error; {r['id']} trains on and is "
                    f"{'faster' if faster else 'as fast and no larger'} ({r['p50_us']:.1f} vs {run['p50_us']:.1f} us)")
    return None


def time_for_training(left_s: float | None, full_runs_s: list[float], folds: int) -> bool:
    """Whether a training started now ends before the search's time is up, with the fold
    re-trainings a finalist gets: one full training and `folds` more, each as long as the longest
    full training of this search so far (none yet, or no time limit: it starts). The time limit
    stops the search between trials; without this a training started a minute before it would run
    (with its folds) several minutes past it."""
    if left_s is None or not full_runs_s:
        return True
    return left_s >= (1 + (folds if folds >= 2 else 0)) * max(full_runs_s)


def closest(cands: list[Candidate]) -> str:
    """The candidate nearest to meeting every budget, and what it broke."""
    scored = [(max(excess(b) for b in c.broken), c) for c in cands if c.broken]
    if not scored:
        return "no candidate got far enough to be judged"
    _, c = min(scored, key=lambda t: t[0])
    return f"closest: {c.id} ({sp.describe(c.config)}) broke {c.why}"
