"""Fleets in parallel (one board down must not stop the others) and HOST=local as a board."""
import json
import os

import pytest

from emuboard import loopback as sshd_tool
from tests.deploy.conftest import cli, release_of, trust

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def second_board(board, first_deploy, tmp_path):
    """Another real sshd with its own board home; its runtime venv is the first board's (already
    installed), so the test pays for no second install."""
    home = tmp_path / "board2-home"
    home.mkdir()
    os.symlink(board.board_home / "venv", home / "venv")
    server = sshd_tool.start(tmp_path / "sshd2", board_home=home)
    yield server
    server.stop()


def test_fleet_one_board_down_others_deploy_and_bench(client_home, board, second_board, bundle, agent,
                                                      first_deploy, capsys):
    trust(client_home, board, alias="pi1")
    trust(client_home, second_board, alias="pi2")
    down = f"root@127.0.0.1:{sshd_tool.free_port()}"
    hosts = f"pi1,pi2,{down}"
    assert cli("push", "--bundle", bundle, "--hosts", hosts, "--agent", agent) == 1
    summary = capsys.readouterr().err
    assert "deploy summary:" in summary
    lines = {l.split()[0]: l for l in summary.splitlines() if l.startswith("  ")}
    assert " ok " in lines["pi1"] and " ok " in lines["pi2"]
    assert "FAILED" in lines[down] and "unreachable" in lines[down]
    assert release_of(second_board.board_home) == first_deploy["release"]

    fleet_file = client_home / "fleet.txt"
    fleet_file.write_text("# two boards\npi1\npi2\n")
    assert cli("bench", "--bundle", bundle, "--hosts", f"@{fleet_file}") == 0
    for host in ("pi1", "pi2"):
        [path] = (client_home.parent / "results" / host).glob("*.json")
        assert json.loads(path.read_text())["deploy"]["host"] == host


def test_host_local_deploys_and_benches_without_ssh(client_home, board, first_deploy, bundle, agent, capsys):
    edgekit = client_home / ".edgekit"
    os.symlink(board.board_home / "venv", edgekit / "venv")      # the runtime, installed once per session
    assert cli("push", "--bundle", bundle, "--host", "local", "--agent", agent) == 0
    assert release_of(edgekit) == first_deploy["release"]
    assert cli("bench", "--bundle", bundle, "--host", "local") == 0
    [path] = (client_home.parent / "results" / "local").glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["deploy"]["profile"] == "local"
    assert doc["runtime"]["name"] == "ai_edge_litert"
