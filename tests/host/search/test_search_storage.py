"""The search's study storage on a real PostgreSQL server and on SQLite: board leases under real
concurrency (processes racing for two boards), an unreachable storage refused in one line."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def search_env(tmp_path_factory) -> dict:
    from tests.host.search.test_search import make_env

    return make_env(tmp_path_factory.mktemp("search-pg"))

# Each process takes a board 12 times; while it holds one it creates a file named after the board
# with O_EXCL, which fails if any other process holds the same board at that moment.
RACER = """
import os, sys, time
from host.search import study as st
from host.search.lease import Leases
url, folder, tag = sys.argv[1:4]
leases = Leases(st.engine(st.storage_url("lease", url)))
for i in range(12):
    with leases.hold(["b1", "b2"], tag) as board:
        fd = os.open(os.path.join(folder, board), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        time.sleep(0.02)
        os.close(fd)
        os.unlink(os.path.join(folder, board))
"""


def race(url: str, folder: Path, n: int = 4) -> list[dict]:
    from host.search import study as st
    from host.search.lease import Leases

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, url, str(folder), f"w{i}"], env=env, cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(errs)
    return Leases(st.engine(st.storage_url("lease", url))).history()


def assert_never_two_holders(history: list[dict], n: int) -> None:
    assert len(history) == 12 * n
    assert {h["holder"] for h in history} == {f"w{i}" for i in range(n)}
    for board in ("b1", "b2"):
        spans = sorted((h["taken"], h["returned"]) for h in history if h["board"] == board)
        assert spans, f"nobody used {board}"
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end is not None and start >= end, f"{board} held twice at once"


def test_board_leases_are_exclusive_on_postgresql(postgres_url, tmp_path):
    assert_never_two_holders(race(postgres_url, tmp_path), 4)


def test_board_leases_are_exclusive_on_sqlite(tmp_path):
    assert_never_two_holders(race(f"sqlite:///{tmp_path / 'study.db'}", tmp_path, 3), 3)


def test_a_busy_board_makes_the_next_worker_wait(tmp_path):
    from host.search import study as st
    from host.search.lease import Leases

    leases = Leases(st.engine(f"sqlite:///{tmp_path / 'study.db'}"))
    with leases.hold(["only"], "a"):
        with pytest.raises(TimeoutError, match="no board of only came free"):
            with leases.hold(["only"], "b", wait_s=0.5):
                pass
    with leases.hold(["only"], "b", wait_s=0.5) as board:
        assert board == "only"


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/none", "postgresql://edgekit@/edgekit?host=/nonexistent"])
def test_unreachable_storage_is_one_line_exit_2_before_anything_is_measured(url, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGEKIT_ARTIFACTS=str(tmp_path / "artifacts"),
               EDGEKIT_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "host", "search", "--dataset", "digits", "--name", "x",
                           "--max-p50-us", "10", "--storage", url], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "unreachable" in line and url.split("?")[0].split("@")[1].split("/")[0] in line
    # nothing measured, no board visited, no study made (the log of TensorFlow's native lines aside)
    assert not (tmp_path / "home").exists() and not (tmp_path / "artifacts" / "search-x").exists()


def test_tiny_search_on_postgresql_with_two_worker_processes(postgres_url, search_env):
    """Two worker processes share one study on the server (and one board, by lease); the
    leaderboard written from the study passes the same checks as the one-process SQLite search."""
    from host.search import study as st
    from host.search.lease import Leases
    from tests.host.search.test_search import SEARCH, check_decisions, host, leaderboard

    args = [a if a != "tiny" else "pg" for a in SEARCH] + ["--storage", postgres_url, "--workers", "2"]
    proc = host(search_env, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lb = leaderboard(search_env, "pg")
    check_decisions(lb)
    assert lb["storage"].startswith("postgresql+psycopg://edgekit@/edgekit")
    assert not (Path(search_env["EDGEKIT_ARTIFACTS"]) / "search-pg" / "study.db").exists()
    workers = {c["worker"] for c in lb["candidates"] if c.get("worker")}
    assert len({w.split(":")[1] for w in workers}) == 2, "both worker processes should have run trials"
    folded = [c for c in lb["candidates"] if (c.get("int8") or {}).get("folds")]
    assert folded, "a finalist should have been re-validated on folds"
    for c in folded:        # each fold trained once, by a worker of this search (whichever took it)
        runs = c["int8"]["fold_runs"]
        assert len(runs) == 2 and {r["worker"] for r in runs} <= workers and all(r["seconds"] > 0 for r in runs)
    assert lb["runs"][-1]["tf_threads_per_worker"] == max(1, os.cpu_count() // 2)   # the cores shared out
    board = f"local@{socket.gethostname()}"         # `local` leased per host
    leases = [h for h in Leases(st.engine(st.storage_url("pg", postgres_url))).history() if h["board"] == board]
    assert len(leases) >= sum(len(c.get("measured", [])) for c in lb["candidates"])
    spans = sorted((h["taken"], h["returned"]) for h in leases)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end is not None and start >= end, "the board was measured on by two workers at once"
