"""The search's decisions on figures, pinned one by one (fast: no training, no board).

`broken` says which budgets a candidate's figures break (a candidate exactly at a limit meets it),
`excess` how far past, `closest` which candidate came nearest when nothing met every budget,
and `pareto` which finalists no other finalist beats on both accuracy and latency.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from host.search.candidate import Candidate
from host.search.decide import broken, closest, excess, halve, most_compute, one_kind, pareto, rungs
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


def _fin(ident: str, top1: float, p50: float | None) -> Candidate:
    return Candidate(ident, CFG, int8={"host_top1": top1}, final={"p50_us": p50} if p50 is not None else {})


def test_pareto_keeps_the_finalists_nobody_beats_on_both():
    cands = [_fin("fast", 0.95, 20.0), _fin("accurate", 0.99, 60.0), _fin("middle", 0.97, 40.0),
             _fin("dominated", 0.96, 45.0),         # middle is more accurate and faster
             _fin("tie_worse", 0.97, 41.0),         # same accuracy as middle, slower
             _fin("unmeasured", 0.999, None)]       # no re-measured latency: not on the front
    assert pareto(cands) == ["fast", "accurate", "middle"]


def test_pareto_same_latency_more_accurate_dominates():
    assert pareto([_fin("slower_acc", 0.97, 40.0), _fin("better", 0.98, 40.0)]) == ["better"]
    assert pareto([_fin("a", 0.97, 40.0), _fin("b", 0.97, 30.0)]) == ["b"]


def test_pareto_keeps_exact_duplicates_and_single_points():
    assert pareto([_fin("a", 0.9, 10.0), _fin("b", 0.9, 10.0)]) == ["a", "b"]
    assert pareto([_fin("only", 0.5, 99.0)]) == ["only"]


def _cand(ident: str, macs: int = 0, val: dict | None = None) -> Candidate:
    return Candidate(ident, CFG, static={"macs": macs},
                     train={str(e): {"val_accuracy": v} for e, v in (val or {}).items()})


def test_training_goes_to_the_most_compute_in_draw_order():
    cands = [_cand("c01", 300), _cand("c02", 900), _cand("c03", 100), _cand("c04", 500)]
    chosen, rest = most_compute(cands, 2)
    assert [c.id for c in chosen] == ["c02", "c04"]
    assert [c.id for c in rest] == ["c01", "c03"]                  # draw order kept on both sides
    assert [c.id for c in most_compute(cands, 3)[0]] == ["c01", "c02", "c04"]
    assert most_compute(cands, 9) == (cands, [])                       # fewer than allowed: all of them
    assert most_compute(cands, 0) == ([], cands)
    tie = [_cand("c05", 200), _cand("c06", 200), _cand("c07", 200)]
    assert [c.id for c in most_compute(tie, 2)[0]] == ["c05", "c06"]   # equal MACs: the first drawn


def test_rungs_a_ninth_a_third_then_all():
    assert rungs(40) == [4, 13, 40]
    assert rungs(45) == [5, 15, 45]
    assert rungs(18) == [2, 6, 18]
    assert rungs(9) == [1, 3, 9]
    assert rungs(2) == [1, 2]            # too few epochs for three distinct rungs
    assert rungs(1) == [1]


def test_halve_keeps_the_better_half_rounded_up():
    cands = [_cand("c01", val={4: 0.80}), _cand("c02", val={4: 0.95}), _cand("c03", val={4: 0.70}),
             _cand("c04", val={4: 0.90}), _cand("c05", val={4: 0.85})]
    top, rest = halve(cands, 4)
    assert [c.id for c in top] == ["c02", "c04", "c05"]             # 5 -> 3, best first
    assert [c.id for c in rest] == ["c01", "c03"]
    top, rest = halve(cands[:4], 4)
    assert [c.id for c in top] == ["c02", "c04"] and [c.id for c in rest] == ["c01", "c03"]
    assert halve([cands[0]], 4) == ([cands[0]], [])                     # one left: it goes on


def test_halve_reads_the_rung_asked_and_breaks_ties_by_draw_order():
    a, b = _cand("c01", val={4: 0.90, 13: 0.80}), _cand("c02", val={4: 0.85, 13: 0.95})
    assert halve([a, b], 4)[0] == [a]
    assert halve([a, b], 13)[0] == [b]
    x, y, z = _cand("c03", val={4: 0.9}), _cand("c04", val={4: 0.9}), _cand("c05", val={4: 0.9})
    assert halve([x, y, z], 4) == ([x, y], [z])


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
