"""The search's decisions on figures, pinned one by one (fast: no training, no board).

`broken` says which budgets a candidate's figures break (a candidate exactly at a limit meets it),
`excess` how far past, `closest` which candidate came nearest when nothing met every budget,
`select` which finalist wins when accuracies differ by less than their uncertainty, and
`dominated_at_cut` which run the cut halts because a faster one as accurate trains on.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from host.search.candidate import Candidate
from host.search.decide import accuracy, broken, closest, dominated_at_cut, excess, one_kind, out_of_reach, select
from host.search.board import BoardRun
from host.search.space import SearchError

CFG = {"alpha": 0.5, "input": [21, 21, 1], "blocks": [[64, 2], [128, 1]], "kernel": 3, "stem_filters": 16}


@pytest.mark.parametrize("key, figure, at, over", [
    ("max_p50_us", "p50_us", 50.0, 50.01),
    ("max_p99_us", "p99_us", 80.0, 80.5),
    ("max_peak_rss_mb", "peak_rss_mb", 60.0, 60.1),
    ("max_size_kb", "size_kb", 100.0, 101.0),
])
def test_a_maximum_is_met_at_the_limit_and_broken_above_it(key, figure, at, over):
    assert broken({key: at}, {figure: at}) == []
    assert broken({key: at}, {figure: at - 1}) == []
    [b] = broken({key: at}, {figure: over})
    assert (b["budget"], b["value"], b["limit"]) == (key, over, at)
    assert "> budget" in b["text"] and f"{at:g}" in b["text"]


def test_a_minimum_accuracy_is_met_at_the_limit_and_broken_below_it():
    assert broken({"min_top1": 0.98}, {"top1": 0.98}) == []
    assert broken({"min_top1": 0.98}, {"top1": 0.99}) == []
    [b] = broken({"min_top1": 0.98}, {"top1": 0.975})
    assert b["text"] == "on-device top-1 97.50 % < budget 98.00 %"


def test_texts_name_figure_value_unit_and_limit():
    [b] = broken({"max_p50_us": 46.21}, {"p50_us": 52.6})
    assert b["text"] == "p50 52.6 us > budget 46.21 us"
    [b] = broken({"max_size_kb": 200}, {"size_kb": 250.0})
    assert b["text"] == "INT8 size 250.0 KB > budget 200 KB"


def test_only_the_broken_budgets_are_listed_and_unmeasured_figures_pass():
    budgets = {"max_p50_us": 50, "max_peak_rss_mb": 60, "min_top1": 0.9}
    out = broken(budgets, {"p50_us": 70.0, "peak_rss_mb": 55.0})       # top1 not measured yet
    assert [b["budget"] for b in out] == ["max_p50_us"]
    assert broken(budgets, {}) == []
    # an unmeasured figure first does not hide a broken one after it
    out = broken({"min_top1": 0.9, "max_p50_us": 50}, {"p50_us": 70.0})
    assert [b["budget"] for b in out] == ["max_p50_us"]


def test_excess_is_relative_to_the_limit():
    assert excess({"value": 55.0, "limit": 50.0}) == pytest.approx(0.1)
    assert excess({"value": 0.88, "limit": 0.9}) == pytest.approx(0.02 / 0.9)
    assert excess({"value": 1.0, "limit": 0}) == math.inf


def test_closest_names_the_candidate_with_the_smallest_worst_excess():
    cands = [
        Candidate("c01", CFG, why="p50 80.0 us > budget 50 us",
                  broken=[{"value": 80.0, "limit": 50.0}]),                                   # 60 % over
        Candidate("c02", CFG, why="p50 55.0 us > budget 50 us",
                  broken=[{"value": 55.0, "limit": 50.0}, {"value": 0.89, "limit": 0.9}]),     # worst 10 % over
        Candidate("c03", CFG, why="", broken=[]),                                            # never judged
    ]
    assert closest(cands) == "closest: c02 (a0.5 21px 2blk k3 s16 w128) broke p50 55.0 us > budget 50 us"
    assert closest([Candidate("c00", CFG, broken=[])]) == "no candidate got far enough to be judged"
    assert closest([Candidate("c00", CFG)]) == "no candidate got far enough to be judged"
    tie = [replace(cands[1], id="c07"), replace(cands[1], id="c08")]
    assert closest(tie).startswith("closest: c07 ")          # equally close: the first one drawn


def _fin(ident: str, val: float, p50: float, n: int = 500, size: int = 10_000, folds=None) -> Candidate:
    return Candidate(ident, CFG, status="finalist", final={"p50_us": p50},
                     int8={"val_top1": val, "val_n": n, "size_bytes": size,
                           **({"folds": folds, "folds_n": 3000} if folds else {})})


def test_accuracy_is_the_binomial_error_of_one_split_or_the_spread_of_the_folds():
    m, s = accuracy(_fin("a", 0.98, 10.0, n=500))
    assert m == 0.98 and s == pytest.approx(math.sqrt(0.98 * 0.02 / 500))       # ~0.63 pp
    m, s = accuracy(_fin("b", 0.0, 10.0, n=1000, folds=[0.96, 0.98, 0.97]))
    assert m == pytest.approx(0.97)
    assert s == pytest.approx(max(0.01 / math.sqrt(3), math.sqrt(0.97 * 0.03 / 3000)))
    m, s = accuracy(_fin("c", 0.0, 10.0, folds=[0.97, 0.97, 0.97]))       # folds agree: the binomial error
    assert s == pytest.approx(math.sqrt(0.97 * 0.03 / 3000))


def test_a_clear_lead_wins_even_when_slower():
    fast, best = _fin("c01", 0.90, 10.0), _fin("c02", 0.98, 30.0)
    assert select([fast, best], {}) is best
    assert best.status == "winner" and "most accurate" in best.why
    assert fast.status == "finalist" and "below c02 by more than one standard error" in fast.why


def test_a_lead_inside_the_noise_is_a_tie_broken_by_latency_then_size():
    # the case that picked the wrong model: 98.4 % vs 97.6 % on 500 images is within one error
    noisy, steady = _fin("c16", 0.984, 30.0), _fin("c03", 0.976, 25.0)
    assert select([noisy, steady], {}) is steady
    assert "tied with c16" in steady.why and "faster" in steady.why
    assert "tied with c03" in noisy.why
    a, b = _fin("c01", 0.951, 20.0, size=9000), _fin("c02", 0.95, 20.0, size=8000)
    assert select([a, b], {}) is b                                     # same latency: the smaller file
    # a p50 lead inside the latency noise is no lead: the smaller file, then the more accurate, wins
    big, small = _fin("c05", 0.9787, 33.3, size=566_000), _fin("c04", 0.980, 33.4, size=162_000)
    assert select([big, small], {}) is small
    assert "most accurate" in small.why and "as fast, larger" in big.why
    big, small = _fin("c05", 0.980, 33.3, size=566_000), _fin("c04", 0.9787, 33.4, size=162_000)
    assert select([big, small], {}) is small and "as fast (p50 within 5 %) and smaller" in small.why
    quick, more = _fin("c06", 0.975, 20.0), _fin("c07", 0.977, 20.5)         # same size: the more accurate
    assert select([quick, more], {}) is more
    # with more validation data the same gap is no longer noise
    noisy, steady = _fin("c16", 0.984, 30.0, n=20_000), _fin("c03", 0.976, 25.0, n=20_000)
    assert select([noisy, steady], {}) is noisy


def test_every_finalist_gets_its_interval_and_only_finalists_can_win():
    over = _fin("c05", 0.999, 5.0)
    over.status = "over budget"
    a = _fin("c01", 0.9, 10.0)
    assert select([over, a], {}) is a
    lo, hi = a.extra["val_interval"]
    assert lo < 0.9 < hi and hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.09 / 500), abs=1e-4)
    assert "90.00 ±" in a.why
    assert select([over], {}) is None and select([], {}) is None


def test_folds_are_spent_only_on_a_finalist_that_could_still_win():
    """(each fold is a full training) A finalist further behind a fold-validated rival than two
    standard errors of the difference gets no folds; one inside that, or with no validated rival, does."""
    rival = _fin("c03", 0.0, 20.0, folds=[0.980, 0.982, 0.981])          # ~98.1 %, error ~0.25 pp
    far, near = _fin("c07", 0.960, 10.0), _fin("c08", 0.975, 10.0)        # one split of 500: ~0.8 pp
    why = out_of_reach(far, [rival, far])
    assert why and "c03" in why and "2.10 pp below" in why
    assert out_of_reach(near, [rival]) is None                             # 0.6 pp < 2 x 0.75 pp
    unvalidated = _fin("c04", 0.999, 20.0)                                 # one split only: not a yardstick
    over = _fin("c05", 0.0, 20.0, folds=[0.999] * 3)
    over.status = "over budget"                                            # out of the race
    assert out_of_reach(far, [unvalidated, over]) is None


def _board(name: str, profile: str, runtime: str) -> BoardRun:
    return BoardRun(name, runtime, {"name": profile, "budgets": {}, "bench": {}})


def test_boards_of_one_kind_give_the_first_and_mixed_kinds_are_one_line():
    a, b = _board("pi0", "rpi4", "ai-edge-litert==2.3.0"), _board("pi1", "rpi4", "ai-edge-litert==2.3.0")
    assert one_kind(["pi0", "pi1"], [a, b]) is a
    assert one_kind(["pi0"], [a]) is a
    for other in (_board("pi5", "rpi5", "ai-edge-litert==2.3.0"), _board("old", "rpi4", "tflite-runtime==2.14.0")):
        with pytest.raises(SearchError) as e:
            one_kind(["pi0", "pi1", "x"], [a, b, other])
        assert str(e.value) == ("HOSTS= must be boards of one profile and runtime: "
                                "pi0 is rpi4 (ai-edge-litert==2.3.0), pi1 is rpi4 (ai-edge-litert==2.3.0), "
                                f"x is {other.profile['name']} ({other.runtime}); "
                                "set PROFILE= or search one kind of board at a time")


def test_a_training_starts_only_if_it_and_its_folds_end_in_the_time_left():
    from host.search.decide import time_for_training

    assert time_for_training(None, [100.0], 3)              # no time limit
    assert time_for_training(10.0, [], 3)                   # nothing to judge by yet: the first one starts
    assert time_for_training(400.0, [90.0, 100.0], 3)       # 1 + 3 trainings of the longest: 400 s
    assert not time_for_training(399.0, [90.0, 100.0], 3)
    assert time_for_training(100.0, [100.0], 0)             # no folds: one training
    assert not time_for_training(-5.0, [1.0], 0)            # past the deadline


def _run(id_, val, p50, size=100.0):
    return {"id": id_, "val": val, "p50_us": p50, "size_kb": size}


def test_at_the_cut_a_slower_run_not_clearly_ahead_of_a_faster_one_going_on_is_halted():
    """mnist5k at 0.4x, WORKERS=2: c15 (36.8 us) 3 images of 500 ahead of c04 (33.4 us) at epoch 4."""
    c04 = _run("c04", 0.928, 33.4)
    why = dominated_at_cut(_run("c15", 0.934, 36.8), [c04], 500)
    assert why and "c04" in why and "faster" in why
    assert dominated_at_cut(_run("c15", 0.900, 36.8), [c04], 500)          # behind it: no better
    # clearly ahead (more than one standard error of the difference, ~1.6 pp here): it goes on
    assert dominated_at_cut(_run("c15", 0.950, 36.8), [c04], 500) is None
    # with more validation images the same lead is past the noise
    assert dominated_at_cut(_run("c15", 0.940, 36.8), [c04], 20_000) is None


def test_at_the_cut_latency_within_its_noise_is_as_fast_and_then_size_decides():
    going_on = _run("c04", 0.93, 33.4, size=160.0)
    assert dominated_at_cut(_run("c09", 0.93, 34.0, size=200.0), [going_on], 500)      # as fast, larger
    assert dominated_at_cut(_run("c09", 0.93, 34.0, size=120.0), [going_on], 500) is None   # smaller
    assert dominated_at_cut(_run("c09", 0.93, 30.0, size=900.0), [going_on], 500) is None   # faster
    assert dominated_at_cut(_run("c09", 0.93, 36.8), [], 500) is None                    # nobody going on
    assert dominated_at_cut(going_on, [going_on], 500) is None                          # not itself
