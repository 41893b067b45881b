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

# digits (8x8): c00 is the default model (~590 KB INT8, ~14 us here); the space's own models are tiny
# (~10-40 KB, ~5-6 us). The p50 budget sits between the two, so the default is pruned by its
# measurement, before training; the RSS budget is generous (the agent's process is ~50 MB).
# The study stops after 2 trainings (or 4 trials).
SEARCH = ["search", "--dataset", "digits", "--name", "tiny", "--trials", "4", "--epochs", "2", "--max-trained", "2",
          "--max-p50-us", "10", "--max-rss-mb", "300", "--calib_n", "50", "--folds", "2", "--space", SPACE]
FIGURE = {"max_p50_us": "p50_us", "max_p99_us": "p99_us", "max_peak_rss_mb": "peak_rss_mb"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    return make_env(tmp_path_factory.mktemp("search"))


def make_env(base: Path) -> dict:
    """A search's environment: its own artifacts, and this machine as the board (a local runtime)."""
    home = base / "edgekit-home"
    home.mkdir()
    make_local_runtime(home)
    return dict(os.environ, PYTHONPATH=str(ROOT), EDGEKIT_HOME=str(home), EDGEKIT_ARTIFACTS=str(base / "artifacts"),
                EDGEKIT_CACHE=str(base / "cache"), EDGEKIT_QUIET="1", TF_CPP_MIN_LOG_LEVEL="2",
                EDGEKIT_SEARCH_HEARTBEAT_S="1", EDGEKIT_SEARCH_GRACE_S="4")


def host(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=800)


def leaderboard(env: dict, name: str) -> dict:
    return json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / f"search-{name}" / "leaderboard.json").read_text())


@pytest.fixture(scope="module")
def first_run(env):
    proc = host(env, *SEARCH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, leaderboard(env, "tiny")


def final_figures(c: dict) -> dict:
    f = c["final"]
    return {"p50_us": f["p50_us"], "p99_us": f["p99_us"], "peak_rss_mb": f["peak_rss_mb"],
            "size_kb": c["int8"]["size_bytes"] / 1024, "top1": f.get("device_top1")}


def broken(budgets: dict, fig: dict) -> list:
    from host.search.decide import broken

    return broken(budgets, fig)


def meets(budgets: dict, fig: dict) -> bool:
    return not broken(budgets, fig)


def check_decisions(lb: dict) -> None:
    """The search's decisions, re-checked from what its leaderboard records."""
    from host.search.candidate import Candidate
    from host.search.decide import accuracy

    budgets = lb["budgets"]
    cands = {c["id"]: c for c in lb["candidates"]}
    assert cands["c00"]["default"] and cands["c00"]["trial"] == 0

    # every discarded candidate really broke a budget, with the figure it was judged on, and was not trained
    over = [c for c in cands.values() if c["status"] == "over budget"]
    assert any(c["stage"] == "measured" for c in over), "the p50 budget should prune the default before training"
    for c in over:
        assert c["broken"]
        for b in c["broken"]:
            assert (b["value"] > b["limit"]) if b["budget"].startswith("max") else (b["value"] < b["limit"])
            assert b["limit"] == budgets[b["budget"]]
            if c["stage"] == "measured":
                assert b["value"] == c["short"][FIGURE[b["budget"]]]
        if c["stage"] in ("static", "measured"):
            assert c["state"] == "PRUNED" and "train" not in c, "discarded by measurement yet trained"

    # the scaled default model, larger steps first: a skipped step is smaller than one measured within
    # every budget and was neither measured nor trained; every step before the first that fits broke one
    steps = sorted((c for c in cands.values() if c.get("ladder")), key=lambda c: c["ladder"])
    fits = [c for c in steps if c.get("short") and "error" not in c["short"] and c["status"] != "over budget"]
    for c in steps:
        if c["status"] == "skipped":
            [larger] = [f for f in fits if f["id"] in c["why"]]
            assert larger["ladder"] < c["ladder"] and "short" not in c and "train" not in c
        elif not fits or c["ladder"] < fits[0]["ladder"]:
            assert c["status"] == "over budget"
        else:               # with any number of workers, only the largest step that fits goes on
            assert c["ladder"] == fits[0]["ladder"] or c["state"] == "FAIL", c

    # everything trained was measured first, untrained, within budget
    trained = [c for c in cands.values() if "train" in c]
    assert trained
    for c in trained:
        assert meets(budgets, {k: c["short"][k] for k in ("p50_us", "p99_us", "peak_rss_mb")})
    # a run the pruner stopped went no further
    for c in cands.values():
        if c["status"] == "halved":
            assert c["state"] == "PRUNED" and "int8" not in c and "final" not in c

    # the winner meets every budget on re-measurement; no finalist within budget is more accurate
    # by more than the uncertainty, and those within it are not faster
    [win] = [c for c in cands.values() if c["status"] == "winner"]
    assert lb["winner"] == win["id"] and win["state"] == "COMPLETE"
    assert meets(budgets, final_figures(win))
    assert win["final"]["settings"] != win["short"]["settings"]      # the profile's normal run, not the short one
    wm, ws = accuracy(Candidate.from_dict(win))
    for c in cands.values():
        if c is win or c["state"] != "COMPLETE" or not meets(budgets, final_figures(c)):
            continue
        m, s = accuracy(Candidate.from_dict(c))
        if m > wm:
            assert m - wm <= (ws ** 2 + s ** 2) ** 0.5 and c["final"]["p50_us"] >= win["final"]["p50_us"]
    assert win["final"]["device_top1"] == pytest.approx(win["int8"]["host_top1"], abs=1e-5)
    lo, hi = win["val_interval"]
    assert lo <= wm <= hi

    # the Pareto front is Optuna's: feasible finished trials, none dominated by another (accuracy as the
    # study saw it: over the folds where a finalist was re-validated on them)
    pts = {c["id"]: (accuracy(Candidate.from_dict(c))[0], c["final"]["p50_us"], c["final"]["peak_rss_mb"])
           for c in cands.values()
           if c["state"] == "COMPLETE" and meets(budgets, final_figures(c))}
    assert lb["pareto"] and set(lb["pareto"]) <= set(pts)
    for i in lb["pareto"]:
        a = pts[i]
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b[2] <= a[2] and b != a for b in pts.values())

    # nothing measured twice: one untrained bench per graph, one final bench per trained file
    shorts = [c["static"]["graph"] for c in cands.values() if "short" in c.get("measured", [])]
    assert len(shorts) == len(set(shorts))
    assert all(c.get("measured", []).count("final") <= 1 for c in cands.values())


def test_decisions_match_the_leaderboard(first_run):
    proc, lb = first_run
    assert lb["budgets"] == {"max_p50_us": 10.0, "max_peak_rss_mb": 300.0}
    assert lb["storage"].startswith("sqlite:///") and lb["storage"].endswith("search-tiny/study.db")
    check_decisions(lb)
    assert sum(1 for c in lb["candidates"] if "train" in c) <= 2
    first = next(c for c in lb["candidates"] if c.get("ladder") and c["status"] != "over budget")
    assert first["status"] in ("winner", "finalist", "halved") and "train" in first    # the step that fits
    for c in lb["candidates"]:      # every finalist within budget re-validated on FOLDS=2 folds
        if c["status"] in ("winner", "finalist"):
            assert len(c["int8"]["folds"]) == 2 and c["int8"]["folds_n"] > c["int8"]["val_n"]
    assert "winner" in proc.stdout and lb["winner"] in proc.stdout


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
    after = leaderboard(env, "tiny")
    assert len(after["runs"]) == 2
    assert after["runs"][-1]["bench_calls"] == 0 and after["runs"][-1]["trained"] == 0
    assert [c["id"] for c in after["candidates"]] == [c["id"] for c in before["candidates"]]
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


def test_same_name_other_search_is_refused_naming_both(first_run, env):
    proc = host(env, *[a if a != "2" else "3" for a in SEARCH])      # --epochs 3 (and folds): another search
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "study tiny" in line and "was made for dataset digits" in line and "epochs 2" in line
    assert "this run asks for" in line and "epochs 3" in line


def _study(env: dict, name: str):
    import optuna

    url = f"sqlite:///{Path(env['EDGEKIT_ARTIFACTS']) / f'search-{name}' / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url)


def _schema_made(db: Path) -> bool:
    import sqlite3

    if not db.is_file():
        return False
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return bool(con.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone()
                    and con.execute("SELECT 1 FROM alembic_version").fetchone())


def _wait_for(env: dict, name: str, proc, test, timeout: float = 600) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:    # opened by Optuna only once the search has made its schema (Optuna would make it too: a race)
            if _schema_made(Path(env["EDGEKIT_ARTIFACTS"]) / f"search-{name}" / "study.db") and \
                    test(_study(env, name).get_trials(deepcopy=False)):
                return
        except Exception:  # noqa: BLE001 - the study is not there yet
            pass
        time.sleep(0.3)
    tail = proc.communicate(timeout=60)[1][-1500:] if proc.poll() is not None else ""
    pytest.fail(f"the search never got there (exit {proc.poll()}): {tail}")


def test_ctrl_c_marks_the_running_trial_failed(env):
    import signal

    args = ["search", "--dataset", "digits", "--name", "intr", "--trials", "3", "--epochs", "1",
            "--max-p50-us", "10", "--calibration-samples", "20", "--folds", "0", "--space", SPACE]
    proc = subprocess.Popen([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # while a trial trains (seconds, the longest stage: a Ctrl-C between two trials would fail none)
    _wait_for(env, "intr", proc, lambda ts: any(t.state.name == "RUNNING" and t.user_attrs.get("trained") for t in ts))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "run the same command to continue" in err.strip().splitlines()[-1]
    states = [t.state.name for t in _study(env, "intr").get_trials()]
    assert "RUNNING" not in states and "FAIL" in states      # (the same command continues: the test below)


def test_a_killed_worker_loses_nothing_and_nothing_is_measured_twice(env):
    """SIGKILL while a trial trains (after its board measurement): the same command re-queues that
    trial with what it had measured (Optuna's heartbeat), and finishes the search."""
    import signal

    args = ["search", "--dataset", "digits", "--name", "killed", "--trials", "3", "--epochs", "2", "--max-trained", "1",
            "--max-p50-us", "10", "--calibration-samples", "20", "--folds", "0", "--space", SPACE]
    proc = subprocess.Popen([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(env, "killed", proc, lambda ts: any(t.state.name == "RUNNING" and t.user_attrs.get("trained") for t in ts))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    [dead] = [t for t in _study(env, "killed").get_trials() if t.state.name == "RUNNING"]
    assert "short" in dead.user_attrs["measured"]

    again = host(env, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    lb = leaderboard(env, "killed")
    cands = {c["trial"]: c for c in lb["candidates"]}
    assert cands[dead.number]["state"] == "FAIL" and "re-queued as" in cands[dead.number]["why"]
    [retry] = [c for c in lb["candidates"] if c.get("retry_of") == dead.number]
    assert retry["config"] == cands[dead.number]["config"]
    assert retry["state"] in ("COMPLETE", "PRUNED") and "short" not in retry["measured"]
    assert retry["short"]["measured_utc"] == cands[dead.number]["short"]["measured_utc"]
    check_decisions(lb)


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
                "--max-trained", "2",
                "--max-rss-mb", "1000", "--calibration-samples", "30", "--folds", "0", "--space", str(space))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lb = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "search-squares" / "leaderboard.json").read_text())
    drawn = {c["config"]["input"][0] for c in lb["candidates"] if c.get("config")}
    assert drawn <= {24, 18}
    win = next(c for c in lb["candidates"] if c["id"] == lb["winner"])
    manifest = json.loads((Path(env["EDGEKIT_ARTIFACTS"]) / "squares" / "manifest.json").read_text())
    side = win["config"]["input"][0]
    assert (manifest["input"]["height"], manifest["input"]["channels"]) == (side, 3)
    assert manifest["class_names"] == ["red", "green", "blue"]
    with np.load(Path(env["EDGEKIT_ARTIFACTS"]) / "squares" / "eval.npz") as ev:
        assert ev["x"].shape[1:] == (side, side, 3)
    assert win["final"]["device_top1"] == pytest.approx(win["int8"]["host_top1"], abs=1e-6)
