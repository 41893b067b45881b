"""search-perf's counts read from a leaderboard (fast: a hand-written leaderboard, no search run).

A trial that drew a model another trial had already trained carries that run's `train` entry
(`same_as`) but trained nothing itself: it must not count as a training, or the figure compared
with the old search's trainings grows with every repeated draw."""
from __future__ import annotations

from host.search.cli import search_figures

CFG = {"alpha": 0.5, "input": [28, 28, 1], "blocks": [[64, 2]], "kernel": 3, "stem_filters": 16}


def cand(n: int, status: str, epochs_run: int | None = None, **extra) -> dict:
    c = {"id": f"c{n:02d}", "config": CFG, "trial": n, "status": status, "measured": ["short"], **extra}
    if epochs_run is not None:
        c["train"] = {"40": {"val_accuracy": 0.97, "epochs_run": epochs_run, "seconds": 60.0}}
    return c


def finalist(n: int, status: str = "finalist", top1: float = 0.975, **extra) -> dict:
    return cand(n, status, 40, int8={"host_top1": top1, "val_top1": 0.98, "folds": [0.97, 0.98, 0.975]},
                final={"p50_us": 20.0, "device_top1": top1}, **extra)


def test_repeated_draws_and_trainings_after_the_winner_are_not_trainings_before_it():
    lb = {"candidates": [
        cand(0, "over budget"),                          # the default: pruned by its measurement
        finalist(1),
        {**finalist(2, top1=0.95), "same_as": "c01", "measured": []},     # a repeat draw of c01: no training
        cand(3, "halved", 4),
        finalist(4, "winner", top1=0.978),
        cand(5, "halved", 12),                           # trained after the winner was drawn
    ]}
    fig = search_figures(lb, default_top1=0.984)
    assert fig["trained"] == 4                           # c01, c03, c04, c05
    assert fig["trainings_before_winner"] == 3           # c01, c03, c04
    assert fig["epochs_before_winner"] == 40 + 4 + 40
    assert fig["fold_trainings_before_winner"] == 6      # c01's and c04's three folds each
    assert fig["fold_trainings"] == 6
    assert fig["winner"] == "c04" and fig["delta_top1_pp"] == -0.6
    assert fig["measured"] == 5


def test_no_winner_is_a_figure_too():
    fig = search_figures({"candidates": [cand(0, "over budget"), cand(1, "halved", 4)]}, default_top1=0.984)
    assert fig["winner"] is None and fig["trainings_before_winner"] == 0 and fig["trained"] == 1
