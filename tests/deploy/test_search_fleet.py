"""The model search over HOSTS=: two real sshd boards of one profile share the candidates, each
candidate is measured (untrained, then trained) on the one board, the boards' deployed releases
are untouched. (Boards of different kinds are refused: tests/host/search/test_search_decisions.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import TINY_SPACE
from tests.deploy.conftest import REPO, cli, fleet, release_of, trust

pytestmark = pytest.mark.timeout(900)
SPACE = str(TINY_SPACE)
PROFILE = "name: fleet\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 5\nwarmup_runs: 1\nvariants: [int8]\n"


@pytest.fixture
def two_boards(board, first_deploy, tmp_path):
    with fleet(board, tmp_path, 2) as servers:
        yield servers


def search(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), EDGEKIT_ARTIFACTS=str(tmp_path / "artifacts"),
               EDGEKIT_SEARCH_CACHE=str(tmp_path / "search-cache"), EDGEKIT_QUIET="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "host", "search", "--dataset", "digits", "--space", SPACE, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=800)


def test_search_measures_on_the_fleets_boards_and_leaves_their_releases(client_home, two_boards, bundle,
                                                                              agent, tmp_path):
    hosts = [trust(client_home, s, alias=f"pi{i}") for i, s in enumerate(two_boards)]
    assert cli("push", "--bundle", bundle, "--hosts", ",".join(hosts), "--agent", agent) == 0
    releases = [release_of(s.board_home) for s in two_boards]
    profile = tmp_path / "fleet.yaml"
    profile.write_text(PROFILE)
    args = ["--name", "fleet", "--trials", "4", "--epochs", "2", "--max-trained", "2", "--max-rss-mb", "1000",
            "--calibration-samples", "30", "--hosts", ",".join(hosts), "--profile", str(profile)]
    proc = search(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lb = json.loads((tmp_path / "artifacts" / "search-fleet" / "leaderboard.json").read_text())
    assert lb["hosts"] == hosts and lb["profile"] == "fleet"
    # boards are leased (host/search/lease.py): a free one measures the next candidate
    used = {c["short"]["board"] for c in lb["candidates"] if c.get("short")}
    assert used and used <= set(hosts), used
    for c in lb["candidates"]:
        if c.get("final"):
            assert c["final"]["board"] in hosts
    assert lb["winner"]
    # the deployed releases are as they were; the candidates went to the used boards' scratch directory
    assert [release_of(s.board_home) for s in two_boards] == releases
    for host, s in zip(hosts, two_boards):
        if host in used:
            assert any(p.suffix == ".tflite" for p in (s.board_home / "search").iterdir())

    again = search(tmp_path, *args)          # per-board cache: nothing is measured again
    assert again.returncode == 0, again.stdout + again.stderr
    lb = json.loads((tmp_path / "artifacts" / "search-fleet" / "leaderboard.json").read_text())
    assert lb["runs"][-1]["bench_calls"] == 0

