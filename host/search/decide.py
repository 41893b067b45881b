"""The search's decisions on figures, as pure functions: which budgets a candidate breaks, which
candidates are trained, which go on to the next rung, which finalists form the Pareto front, and
which candidate came closest when nothing met every budget. No training, no board, no files."""
from __future__ import annotations

import math

from host.search import space as sp
from host.search.board import BoardRun
from host.search.candidate import Candidate

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


def most_compute(cands: list[Candidate], n: int) -> tuple[list[Candidate], list[Candidate]]:
    """(the n candidates with the most MACs, the rest), in draw order. Training is the expensive
    step, so it goes to the candidates that use the most of the budget: within one family of
    models, the compute a latency budget allows is the best free predictor of accuracy (MCUNet's
    observation), and the untrained measurement has already made sure all of them fit."""
    chosen = {id(c) for c in sorted(cands, key=lambda c: -c.static["macs"])[:max(0, n)]}
    return [c for c in cands if id(c) in chosen], [c for c in cands if id(c) not in chosen]


def rungs(epochs: int) -> list[int]:
    """Epochs of successive halving's rungs: a ninth, a third, then all of them (40 -> 4, 13, 40);
    fewer rungs when the epochs are too few to tell apart (2 -> 1, 2)."""
    return sorted({max(1, round(epochs / 9)), max(1, round(epochs / 3)), epochs})


def val_at(c: Candidate, epochs: int) -> float:
    """Validation accuracy after training for `epochs` (that rung must have run)."""
    return c.train[str(epochs)]["val_accuracy"]


def halve(trained: list[Candidate], epochs: int) -> tuple[list[Candidate], list[Candidate]]:
    """(the better half by validation top-1 after `epochs`, the rest); the better half is rounded
    up, and on a tie the earlier candidate goes on, so the draw order breaks ties, not chance."""
    ranked = sorted(trained, key=lambda c: -val_at(c, epochs))
    n = math.ceil(len(ranked) / 2)
    return ranked[:n], ranked[n:]


def pareto(cands: list[Candidate]) -> list[str]:
    """Finalists no other finalist beats on both INT8 test top-1 (host) and re-measured p50: a report,
    not a selection (the winner is picked on validation top-1)."""
    pts = [(c.id, c.int8["host_top1"], c.final.get("p50_us")) for c in cands if c.final.get("p50_us")]
    return [i for i, acc, lat in pts
            if not any((a >= acc and l <= lat) and (a > acc or l < lat) for _, a, l in pts)]


def closest(cands: list[Candidate]) -> str:
    """The candidate nearest to meeting every budget, and what it broke."""
    scored = [(max(excess(b) for b in c.broken), c) for c in cands if c.broken]
    if not scored:
        return "no candidate got far enough to be judged"
    _, c = min(scored, key=lambda t: t[0])
    return f"closest: {c.id} ({sp.describe(c.config)}) broke {c.why}"
