"""A finalist's fold re-trainings as jobs in the study's database (host/search/folds.py): under real
concurrency (processes racing on SQLite and on a real PostgreSQL server) every fold is trained by
exactly one worker; a dead taker's fold is taken again; a fold is the model's, whoever posts it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(600)

# Each process takes open folds until none is left; while it "trains" one it creates a file named
# after it with O_EXCL, which fails if any other process is training the same fold at that moment.
RACER = """
import json, os, sys, time
from host.search import study as st
from host.search.folds import FoldJobs
url, folder, tag, n = sys.argv[1:5]
jobs = FoldJobs(st.engine(st.storage_url("folds", url)), "s1")
open(os.path.join(folder, "ready-" + tag), "w").close()     # every racer up before anyone starts
while len([f for f in os.listdir(folder) if f.startswith("ready-")]) < int(n):
    time.sleep(0.01)
done = []
while True:
    job = jobs.take(tag)
    if job is None:
        break
    with jobs.held(job, tag):
        name = os.path.join(folder, f"{job.cand}-{job.fold}")
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        time.sleep(0.05)
        os.close(fd)
        os.unlink(name)
    jobs.finish(job, tag, 0.9 + job.fold / 100, 0.05)
    done.append([job.cand, job.fold])
print(json.dumps(done))
"""
CONFIGS = {f"c{i:02d}": {"alpha": 0.25 * (i + 1), "input": [8, 8, 1]} for i in range(3)}


def jobs_at(url: str, study: str = "s1"):
    from host.search import study as st
    from host.search.folds import FoldJobs

    return FoldJobs(st.engine(st.storage_url("folds", url)), study)


def race(url: str, folder: Path, n: int) -> list[list]:
    jobs = jobs_at(url)
    for cand, cfg in CONFIGS.items():
        jobs.post(cand, cfg, 4)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, url, str(folder), f"w{i}", str(n)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(e for _, e in outs)
    return [json.loads(o) for o, _ in outs]


def check_each_fold_once(url: str, done: list[list], n: int) -> None:
    taken = [tuple(j) for d in done for j in d]
    assert sorted(taken) == sorted((c, f) for c in CONFIGS for f in range(4)), "a fold trained twice or never"
    assert sum(1 for d in done if d) >= 2, "the workers should have shared the folds"
    jobs = jobs_at(url)
    for cand, cfg in CONFIGS.items():
        rows = jobs.results(cfg)
        assert [r["state"] for r in rows] == ["done"] * 4
        assert [r["top1"] for r in rows] == pytest.approx([0.9, 0.91, 0.92, 0.93])
        assert {r["holder"] for r in rows} <= {f"w{i}" for i in range(n)}


def test_each_fold_is_trained_by_one_worker_on_postgresql(postgres_url, tmp_path):
    check_each_fold_once(postgres_url, race(postgres_url, tmp_path, 4), 4)


def test_each_fold_is_trained_by_one_worker_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    check_each_fold_once(url, race(url, tmp_path, 3), 3)


def test_a_fold_is_the_models_and_its_owner_takes_its_own_first(tmp_path):
    """Posting the same model again (a re-queued trial, the same model drawn twice) adds nothing;
    the finalist's worker is given its own folds before older candidates' ones."""
    jobs = jobs_at(f"sqlite:///{tmp_path / 'study.db'}")
    jobs.post("c01", CONFIGS["c01"], 2)
    jobs.post("c02", CONFIGS["c02"], 2)
    jobs.post("c07", CONFIGS["c02"], 2)            # c07: the same model as c02
    assert len(jobs.results(CONFIGS["c02"])) == 2
    first = jobs.take("a", prefer=CONFIGS["c02"])
    assert (first.cand, first.fold) == ("c02", 0) and first.config == CONFIGS["c02"]
    assert jobs.take("b").cand == "c01"             # no preference: the oldest candidate's
    other = jobs_at(f"sqlite:///{tmp_path / 'study.db'}", study="s2")    # another study: its own folds
    assert other.take("c") is None and other.results(CONFIGS["c02"]) == []


def test_a_dead_takers_fold_is_taken_again_and_a_result_is_kept_once(tmp_path, monkeypatch):
    from host.search import folds

    monkeypatch.setattr(folds, "TTL_S", 0.5)
    jobs = jobs_at(f"sqlite:///{tmp_path / 'study.db'}")
    jobs.post("c01", CONFIGS["c01"], 1)
    job = jobs.take("dead")                         # taken, never renewed: its taker died
    assert jobs.take("b") is None                   # while the claim lasts, nobody else gets it
    time.sleep(0.7)
    again = jobs.take("b")
    assert again == job
    jobs.finish(again, "b", 0.97, 1.0)
    jobs.finish(job, "dead", 0.10, 1.0)             # the first taker coming back late changes nothing
    [row] = jobs.results(CONFIGS["c01"])
    assert (row["state"], row["holder"], row["top1"]) == ("done", "b", 0.97)


def test_a_held_fold_is_renewed_and_given_back_if_its_training_raises(tmp_path, monkeypatch):
    from host.search import folds, lease

    monkeypatch.setattr(folds, "TTL_S", 0.4)
    monkeypatch.setattr(lease, "TTL_S", 0.4)        # (renewed every TTL_S/4)
    jobs = jobs_at(f"sqlite:///{tmp_path / 'study.db'}")
    jobs.post("c01", CONFIGS["c01"], 1)
    job = jobs.take("a")
    with pytest.raises(KeyboardInterrupt):
        with jobs.held(job, "a"):
            time.sleep(1.0)                         # past its first claim: renewed
            assert jobs.take("b") is None
            raise KeyboardInterrupt
    assert jobs.take("b") == job                    # given back at once, not after the claim expires


def test_cancelled_folds_are_not_taken_a_running_one_ends_and_posting_again_reopens_them(tmp_path):
    jobs = jobs_at(f"sqlite:///{tmp_path / 'study.db'}")
    jobs.post("c01", CONFIGS["c01"], 3)
    running = jobs.take("a")
    jobs.cancel(CONFIGS["c01"])
    assert jobs.take("b") is None
    jobs.finish(running, "a", 0.95, 2.0)
    assert [r["state"] for r in jobs.results(CONFIGS["c01"])] == ["done", "cancelled", "cancelled"]
    jobs.post("c09", CONFIGS["c01"], 3)             # needed again (the same model, another trial): reopened
    assert [r["state"] for r in jobs.results(CONFIGS["c01"])] == ["done", "open", "open"]
    assert jobs.take("b").fold == 1
