"""Model search end to end on HOST=local: real training, real INT8 files, the real agent on this
machine as the board. The search's decisions are checked against what its leaderboard records."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.host.board_venv import make_local_runtime
from tests.conftest import TINY_SPACE

ROOT = Path(__file__).resolve().parents[3]
SPACE = str(TINY_SPACE)
pytestmark = pytest.mark.timeout(900)

# digits (8x8): c00 is the default model (~590 KB INT8, ~14 us here), the drawn ones (the tests'
# own space) are tiny (~10-40 KB, ~5-6 us). The p50 budget sits between the two, so the default is discarded by its
# measurement, before training; the RSS budget is generous (the agent's process is ~50 MB).
# Three survivors and --max-trained 2: the one with the fewest MACs is measured but not trained.
SEARCH = ["search", "--dataset", "digits", "--name", "tiny", "--trials", "4", "--epochs", "2", "--max-trained", "2",
          "--max-p50-us", "10", "--max-rss-mb", "300", "--calib_n", "50", "--space", SPACE]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("search")
    home = base / "edgekit-home"
    home.mkdir()
    make_local_runtime(home)
    return dict(os.environ, PYTHONPATH=str(ROOT), EDGEKIT_HOME=str(home), EDGEKIT_ARTIFACTS=str(base / "artifacts"),
                EDGEKIT_SEARCH_CACHE=str(base / "search-cache"), EDGEKIT_CACHE=str(base / "cache"),
                EDGEKIT_QUIET="1", TF_CPP_MIN_LOG_LEVEL="2")


def host(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=800)


@pytest.fixture(scope="module")
def first_run(env):
    proc = host(env, *SEARCH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = Path(env["EDGEKIT_ARTIFACTS"]) / "search-tiny" / "leaderboard.json"
    return proc, json.loads(path.read_text())


def final_figures(c: dict) -> dict:
    f = c["final"]
    return {"p50_us": f["p50_us"], "p99_us": f["p99_us"], "peak_rss_mb": f["peak_rss_mb"],
            "size_kb": c["int8"]["size_bytes"] / 1024, "top1": f.get("device_top1")}


def broken(budgets: dict, fig: dict) -> list:
    from host.search.decide import broken

    return broken(budgets, fig)


def meets(budgets: dict, fig: dict) -> bool:
    return not broken(budgets, fig)


def test_decisions_match_the_leaderboard(first_run):
    proc, lb = first_run
    budgets = lb["budgets"]
    assert budgets == {"max_p50_us": 10.0, "max_peak_rss_mb": 300.0}
    cands = {c["id"]: c for c in lb["candidates"]}
    assert len(cands) == 4 and cands["c00"]["default"]

    # every discarded candidate really broke a budget, with the figure it was judged on
    over = [c for c in cands.values() if c["status"] == "over budget"]
    assert over, "the p50 budget should discard the default model before training"
    for c in over:
        assert c["broken"]
        for b in c["broken"]:
            assert (b["value"] > b["limit"]) if b["budget"].startswith("max") else (b["value"] < b["limit"])
            assert b["limit"] == budgets[b["budget"]]
            if c["stage"] == "measured":
                fig = {"max_p50_us": "p50_us", "max_p99_us": "p99_us", "max_peak_rss_mb": "peak_rss_mb"}[b["budget"]]
                assert b["value"] == c["short"][fig]
                assert "train" not in c, "discarded by measurement yet trained"
    assert any(c["stage"] == "measured" for c in over)

    # training went to the survivors with the most MACs; the others were within budget, measured, untrained
    untrained = [c for c in cands.values() if c["status"] == "not trained"]
    trained = [c for c in cands.values() if "train" in c]
    assert untrained and len(trained) == 2
    for u in untrained:
        assert "train" not in u and not broken(budgets, u["short"])
        assert all(u["static"]["macs"] <= t["static"]["macs"] for t in trained)

    # successive halving: every halved candidate was no better after the first rung than every one kept
    halved = [c for c in cands.values() if c["status"] == "halved"]
    kept = [c for c in cands.values() if c.get("int8")]
    assert kept
    for h in halved:
        assert all(h["train"]["1"]["val_accuracy"] <= k["train"]["1"]["val_accuracy"] for k in kept)
        assert "2" not in h["train"]

    # the winner meets every budget on re-measurement, and no within-budget candidate is more accurate
    [win] = [c for c in cands.values() if c["status"] == "winner"]
    assert lb["winner"] == win["id"]
    assert meets(budgets, final_figures(win))
    assert win["final"]["settings"] != win["short"]["settings"]      # the profile's normal run, not the short one
    for c in kept:
        if meets(budgets, final_figures(c)):
            assert c["int8"]["val_top1"] <= win["int8"]["val_top1"]
    assert win["final"]["device_top1"] == pytest.approx(win["int8"]["host_top1"], abs=1e-5)
    assert "winner" in proc.stdout and win["id"] in proc.stdout


def test_winner_is_a_normal_bundle(first_run, env):
    from deploy.releases.ship import bundle_files

    _, lb = first_run
    bundle = Path(env["EDGEKIT_ARTIFACTS"]) / "tiny"
    manifest, files = bundle_files(bundle)           # sha256 of every file checked
    assert set(manifest["variants"]) == {"fp32", "dynamic", "fp16", "int8"}
    search = manifest["model"]["search"]
    assert search["candidate"] == lb["winner"] and search["budgets"] == lb["budgets"]
    win = next(c for c in lb["candidates"] if c["id"] == lb["winner"])
    assert manifest["variants"]["int8"]["sha256"] == win["int8"]["sha256"]   # the very file measured
    assert manifest["input"]["height"] == win["config"]["input"][0]
    assert (Path(env["EDGEKIT_ARTIFACTS"]) / "search-tiny" / "pareto.png").stat().st_size > 1000


def test_second_run_measures_nothing_again(first_run, env):
    _, before = first_run
    proc = host(env, *SEARCH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "search-tiny" / "leaderboard.json").read_text())
    assert len(after["runs"]) == 2
    assert after["runs"][-1]["bench_calls"] == 0 and after["runs"][-1]["trained"] == 0
    for b, a in zip(before["candidates"], after["candidates"]):
        for kind in ("short", "final"):
            assert (b.get(kind) or {}).get("measured_utc") == (a.get(kind) or {}).get("measured_utc")
    assert after["winner"] == before["winner"]
    assert "0 measured on the board in this run" in proc.stdout


def test_budgets_nothing_meets_exit_1_naming_the_closest(env):
    proc = host(env, "search", "--dataset", "digits", "--name", "impossible", "--trials", "3", "--epochs", "1",
                "--max-size-kb", "3", "--space", SPACE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    lb = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "search-impossible" / "leaderboard.json").read_text())
    assert lb["winner"] is None and all(c["status"] == "over budget" for c in lb["candidates"])
    closest = min(lb["candidates"], key=lambda c: c["static"]["int8_size_bytes"])
    assert line.startswith("host: error: no candidate meets every budget") and closest["id"] in line and "INT8 size" in line
    assert lb["runs"][-1]["bench_calls"] == 0 and lb["runs"][-1]["trained"] == 0


def test_no_budget_is_one_line_exit_2(env):
    proc = host(env, "search", "--dataset", "digits", "--name", "nobudget", "--trials", "2")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "no budget set" in line and "MAX_P50_US" in line


def test_same_name_other_search_is_refused(first_run, env):
    proc = host(env, *[a if a != "4" else "5" for a in SEARCH])      # --trials 5: another search
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "holds another search (different trials)" in line


def test_ctrl_c_keeps_finished_candidates_and_the_same_command_continues(env):
    import signal
    import time

    args = ["search", "--dataset", "digits", "--name", "intr", "--trials", "3", "--epochs", "1",
            "--max-p50-us", "10", "--calibration-samples", "20", "--space", SPACE]
    board = Path(env["EDGEKIT_ARTIFACTS"]) / "search-intr"
    proc = subprocess.Popen([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            lb = json.loads((board / "leaderboard.json").read_text())
            if any("static" in c for c in lb["candidates"]):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "run the same command to continue" in err.strip().splitlines()[-1]
    kept = json.loads((board / "leaderboard.json").read_text())
    done = {c["id"]: (board / "cands" / c["id"] / "untrained_int8.tflite").stat().st_mtime_ns
            for c in kept["candidates"] if "static" in c}
    assert done

    again = host(env, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    after = json.loads((board / "leaderboard.json").read_text())
    for cid, mtime in done.items():     # finished work is not redone
        assert (board / "cands" / cid / "untrained_int8.tflite").stat().st_mtime_ns == mtime
    assert after["winner"] and all("static" in c for c in after["candidates"])


def test_a_users_npz_colour_dataset_searched_at_smaller_sizes(env, tmp_path):
    """DATASET=npz:PATH with RGB images: candidates at 24 and 18 px, with stride-1 and stride-2
    stems; the winner's bundle takes its own size (the board resizes to it) and the board agrees."""
    rng = np.random.default_rng(0)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:      # 3 classes: a red, green or blue square
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 60, (n, 24, 24, 3)).astype(np.uint8)
        for img, label in zip(x, y):
            r, c = rng.integers(0, 12, 2)
            img[r:r + 12, c:c + 12, label] = 230
        return x, y

    (x_train, y_train), (x_test, y_test) = images(240), images(60)
    data = tmp_path / "squares.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["red", "green", "blue"]))
    space = tmp_path / "space.yaml"
    space.write_text("seed: 1\nalpha: [0.35]\nresolution: [1.0, 0.75]\nstem_stride: [1, 2]\n"
                     "blocks:\n  - [[16, 2], [32, 2]]\nkernel: [3]\nlast_width: [null]\nstem_filters: [8]\n")
    proc = host(env, "search", "--dataset", f"npz:{data}", "--name", "squares", "--trials", "5", "--epochs", "1",
                "--max-rss-mb", "1000", "--calibration-samples", "30", "--space", str(space))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lb = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "search-squares" / "leaderboard.json").read_text())
    drawn = {(c["config"]["input"][0], c["config"]["stem_stride"]) for c in lb["candidates"][1:]}
    assert drawn == {(24, 1), (24, 2), (18, 1), (18, 2)}
    win = next(c for c in lb["candidates"] if c["id"] == lb["winner"])
    manifest = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "squares" / "manifest.json").read_text())
    side = win["config"]["input"][0]
    assert (manifest["input"]["height"], manifest["input"]["channels"]) == (side, 3)
    assert manifest["class_names"] == ["red", "green", "blue"]
    with np.load(Path(env["EDGEKIT_ARTIFACTS"]) / "squares" / "eval.npz") as ev:
        assert ev["x"].shape[1:] == (side, side, 3)
    assert win["final"]["device_top1"] == pytest.approx(win["int8"]["host_top1"], abs=1e-6)
