"""Board-side faults over real SSH: a full disk, the agent SIGKILLed mid-benchmark, a wrong clock,
an agent that answers with something that is not JSON."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import zipfile

import pytest

from device.contract.fileio import sha256_file
from device.contract.schema import validate
from tests.deploy.conftest import cli, release_of
from tests.deploy.make_bundle import big_copy
from tests.reliability import helpers
from tests.reliability.test_ssh_faults import agent_pids, kill_agents

pytestmark = pytest.mark.timeout(300)
AREA = "SSH and board faults"


def test_full_disk_on_the_board(first_deploy, client_home, trusted_board, bundle, agent, board, earlier_result,
                                tmp_path, capsys):
    """The board's blob store on a 2 MB tmpfs: the 8 MB upload fails, the old release stays."""
    blobs = board.board_home / "blobs"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(blobs)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    before = helpers.snapshot(earlier_result)
    try:
        code = cli("push", "--bundle", big_copy(bundle, tmp_path / "big", 8), "--host", trusted_board, "--agent", agent)
        err = capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(blobs)], check=True)
    assert code == 1 and "Traceback" not in err
    [line] = helpers.failure_lines(err)
    assert "board" in line and "upload of eval.npz failed" in line and "MB free" in line, line
    assert release_of(board.board_home) == first_deploy["release"]
    current = board.board_home / "current"
    assert sha256_file(current / "eval.npz") == json.loads((current / "manifest.json").read_text())["eval"]["sha256"]
    assert helpers.snapshot(earlier_result) == before
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    helpers.count(AREA, "full disk on the board handled")


def test_agent_killed_mid_benchmark(first_deploy, client_home, trusted_board, bundle, board, earlier_result,
                                    tmp_path, capsys):
    profile = tmp_path / "long.yaml"
    profile.write_text("name: long\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 3\n"
                       "warmup_runs: 3000000\n")    # warm-up is not capped by max_samples: seconds
    before = helpers.snapshot(earlier_result)
    killed: list[int] = []

    def kill_agent():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = agent_pids(board, "bench", python_only=True)
            if pids:
                helpers.wait_for_measuring_child(pids[0])   # readiness: it is in the measurement
                os.kill(pids[0], 9)                # the agent itself; its child is orphaned
                killed.append(pids[0])
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_agent)
    watcher.start()
    try:
        code, _, err = helpers.deploy_cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile)
    finally:
        watcher.join()
        kill_agents(board)
    assert killed, "the agent was never seen running"
    assert code == 1 and "Traceback" not in err
    [line] = helpers.failure_lines(err)
    assert "board" in line and "bench fp32.tflite" in line, line
    for name in helpers.assert_untouched(before, earlier_result):   # kept: the other models' figures
        doc = json.loads((earlier_result / name).read_text())
        validate(doc)
        status = {r["model"]["name"]: r["status"] for r in doc["results"]}
        assert status["fp32.tflite"] == "failed" and status.get("int8.tflite") == "ok"
    [kept] = helpers.rejected(earlier_result)
    assert "bench" in json.loads(kept.read_text())["rejected_because"]
    assert release_of(board.board_home) == first_deploy["release"]
    helpers.count(AREA, "agent SIGKILLed mid-benchmark handled")


def fake_agent(path, body: str):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__main__.py", body)
    return path


def test_board_returns_invalid_json(first_deploy, client_home, trusted_board, bundle, agent, board,
                                    earlier_result, tmp_path, capsys):
    garbage = "<html>502 Bad Gateway</html>\n{\"schema\": "
    bad = fake_agent(tmp_path / "agent.pyz", f"import sys\nsys.stdout.write({garbage!r})\n")
    try:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", bad) == 0
        release = release_of(board.board_home)
        capsys.readouterr()
        before = helpers.snapshot(earlier_result)
        assert cli("bench", "--bundle", bundle, "--host", trusted_board) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        [line] = helpers.failure_lines(err)
        assert "board" in line and "agent info gave no result" in line, line
        assert helpers.snapshot(earlier_result) == before
        [kept] = helpers.rejected(earlier_result)
        assert json.loads(kept.read_text())["raw"] == garbage
        assert release_of(board.board_home) == release
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    helpers.count(AREA, "invalid JSON from the board rejected")


@pytest.fixture(scope="module")
def clock_run(first_deploy, board, bundle, tmp_path_factory):
    """Bench `board` on the right clock, then the same board state behind a second sshd whose
    sessions run 10 years in the past (libfaketime); returns (results dir, good doc, skewed doc, path)."""
    lib = helpers.ensure_faketime()
    if lib is None:
        pytest.skip("libfaketime not available (apt-get install faketime)")
    base = tmp_path_factory.mktemp("clock")
    skewed = helpers.start_sshd_like(board, base / "skewed", setenv=f"LD_PRELOAD={lib} FAKETIME=-3650d")
    home, results = base / "home", base / "results"
    (home / ".edgekit").mkdir(parents=True)
    profile = base / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 3\nwarmup_runs: 0\n")
    mp = pytest.MonkeyPatch()
    for key, value in (("HOME", home), ("EDGEKIT_HOME", home / ".edgekit"), ("EDGEKIT_RESULTS", results)):
        mp.setenv(key, str(value))
    try:
        helpers.alias(home, "board", board.port, board.client_key, board.host_key_line)
        assert cli("bench", "--bundle", bundle, "--host", "board", "--profile", profile) == 0
        (home / ".edgekit" / "ssh_config").unlink()
        helpers.alias(home, "board", skewed.port, board.client_key, skewed.host_key_line)
        time.sleep(1.1)                                 # a later host second for the second file
        code = cli("bench", "--bundle", bundle, "--host", "board", "--profile", profile)
    finally:
        mp.undo()
        skewed.stop()
    assert code == 0
    first, second = sorted((results / "board").glob("*.json"))
    return results, json.loads(first.read_text()), json.loads(second.read_text()), second


def test_wrong_board_clock_result_is_stored_by_host_time(clock_run):
    results, good, skewed, path = clock_run
    assert skewed["started_utc"][:4] < good["started_utc"][:4]    # the fault is real: the board's clock is off
    assert path.name[:8] == time.strftime("%Y%m%d", time.gmtime())  # the file is named by the host's clock
    helpers.count(AREA, "board with a wrong clock handled")


def test_wrong_board_clock_newest_result_is_the_newest_received(clock_run):
    from host.report.build import load_results
    results, good, skewed, path = clock_run
    [(newest, _)] = load_results(results)[0]
    assert newest == path
