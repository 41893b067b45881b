"""make perf's cold start: every process really runs, and the floor (python + numpy + runtime +
load + one invoke) is what is subtracted from infer and serve where the agent's own share is shown."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from host.perf import coldstart
from host.perf.run import spread

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def figures(tiny_bundle, tmp_path_factory) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return coldstart.measure(tiny_bundle, tmp_path_factory.mktemp("cold"), 1, env, spread)


def test_every_process_answers_and_is_measured(figures):
    for name in ("python", "floor", "agent_parent", "infer", "serve"):
        assert figures[name]["s"]["n"] == 1 and figures[name]["s"]["median"] > 0
        assert figures[name]["peak_rss_mb"]["median"] > 5
    # the floor loads NumPy and the runtime: more than a bare interpreter start, less than none
    assert figures["floor"]["s"]["median"] > figures["python"]["s"]["median"]
    assert figures["floor"]["peak_rss_mb"]["median"] > figures["python"]["peak_rss_mb"]["median"]


def test_the_floor_is_subtracted_where_shown(figures):
    floor = figures["floor"]["s"]["median"]
    for name in ("infer", "serve"):
        mine = figures[name]["s"]["median"]
        assert figures[name]["own_s"]["median"] == pytest.approx(mine - floor)
        assert figures[name]["over_floor"]["median"] == pytest.approx(mine / floor)
        assert figures[name]["ok"] == (mine / floor <= coldstart.TARGET_RATIO)


def test_ratios_pair_each_repeat_with_its_own_floor():
    samples = {n: [{"s": s, "peak_rss_mb": 1.0} for s in v] for n, v in
               {"python": [0.1, 0.1], "floor": [1.0, 2.0], "agent_parent": [0.3, 0.3],
                "infer": [1.2, 3.0], "serve": [1.5, 2.2]}.items()}
    out = coldstart.summarise(samples, spread)
    assert out["infer"]["over_floor"]["min"] == pytest.approx(1.2) and out["infer"]["over_floor"]["max"] == pytest.approx(1.5)
    assert out["serve"]["own_s"]["min"] == pytest.approx(0.2) and out["serve"]["own_s"]["max"] == pytest.approx(0.5)
    assert out["infer"]["ok"] and out["serve"]["ok"]
