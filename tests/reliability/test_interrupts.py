"""Ctrl-C (SIGINT) during training, conversion, deploy and bench: nothing half-written is left that a
later step would take as good, the board keeps its release, and the next run works."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.errors import DeployError
from deploy.releases.ship import bundle_files
from device.contract.fileio import sha256_file
from tests.deploy.conftest import cli, release_of
from tests.deploy.make_bundle import big_copy
from tests.reliability import helpers
from tests.reliability.test_ssh_faults import agent_pids, kill_agents

pytestmark = pytest.mark.timeout(600)
AREA = "Interrupted steps (SIGINT)"


def start(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=helpers.REPO, env=helpers.python_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_when(proc: subprocess.Popen, ready, limit: float = 180) -> tuple[int, str]:
    """SIGINT `proc` as soon as `ready()` is true; returns (exit code, stderr)."""
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.01)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()[1][-1000:]}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def leftovers(directory: Path) -> list[str]:
    """Temp files or directories a step left behind (a later step must never see them as output)."""
    return [str(p) for p in directory.rglob("*") if ".tmp" in p.name or p.name.startswith(".train-")
            or p.name.endswith(".part")]


def test_sigint_during_training(tmp_path):
    artifacts = tmp_path / "artifacts"
    proc = start("-m", "host", "train", "--dataset", "digits", "--epochs", "500", EDGEKIT_ARTIFACTS=str(artifacts))
    out_dir = artifacts / "digits"
    code, err = interrupt_when(proc, lambda: out_dir.exists() and any(out_dir.glob(".train-*/best.keras")))
    assert code != 0 and "Traceback" not in err, err[-2000:]
    assert not (out_dir / "model.keras").exists() and not (out_dir / "history.json").exists()
    assert leftovers(artifacts) == []
    after = helpers.run_py("-m", "host", "quantize", "--name", "digits", timeout=300,
                           EDGEKIT_ARTIFACTS=str(artifacts))
    assert after.returncode != 0 and "Traceback" not in after.stderr
    assert not (out_dir / "manifest.json").exists()
    helpers.count(AREA, "training interrupted cleanly")


def test_sigint_during_conversion(tiny_bundle, tmp_path):
    """Interrupted as soon as the first bundle file lands: the bundle is either absent or whole."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_bundle.parent, artifacts, ignore=shutil.ignore_patterns("*.tflite", "manifest.json",
                                                                                   "eval.npz"))
    out_dir = artifacts / tiny_bundle.name
    proc = start("-m", "host", "quantize", "--name", tiny_bundle.name, "--calibration-samples", "50",
                 EDGEKIT_ARTIFACTS=str(artifacts))
    code, err = interrupt_when(proc, lambda: any(out_dir.glob("*.tflite")) or any(out_dir.glob(".*.tmp")))
    assert code != 0 and "Traceback" not in err, err[-2000:]
    assert leftovers(artifacts) == []
    try:
        _, files = bundle_files(out_dir)            # a bundle deploy would accept: every file must match
        manifest = json.loads((out_dir / "manifest.json").read_text())
        for v in manifest["variants"].values():
            assert sha256_file(out_dir / v["file"]) == v["sha256"]
    except DeployError as e:
        assert "not a bundle" in str(e) or "missing" in str(e) or "does not match" in str(e)
    helpers.count(AREA, "conversion interrupted cleanly")


def test_sigint_during_deploy(first_deploy, client_home, trusted_board, bundle, agent, board, tmp_path):
    big = big_copy(bundle, tmp_path / "big", 64)
    for delay in (0.0, 0.15):                 # where in the SFTP pipeline the interrupt lands varies
        for part in (board.board_home / "blobs").glob("*.part"):
            part.unlink()
        proc = start("-m", "deploy", "push", "--bundle", str(big), "--host", trusted_board, "--agent", str(agent))
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not helpers.uploading(
                board.board_home / "blobs", set()):
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"deploy hung after Ctrl-C ({delay}s into the upload)")
        assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
        assert [l for l in err.splitlines() if l.strip()][-1].startswith("deploy: error: interrupted")
        assert release_of(board.board_home) == first_deploy["release"]
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    helpers.count(AREA, "deploy interrupted cleanly")


@pytest.fixture(scope="module")
def interrupted_bench(first_deploy, board, bundle, tmp_path_factory):
    """One `deploy bench` interrupted while the agent warms up (run once, judged by two tests)."""
    base = tmp_path_factory.mktemp("interrupted_bench")
    home, results = base / "home", base / "results"
    (home / ".edgekit").mkdir(parents=True)
    earlier = results / "board" / "20260101T000000Z-tiny.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text(json.dumps({"schema": "edgekit/result-v1", "marker": "earlier"}))
    helpers.alias(home, "board", board.port, board.client_key, board.host_key_line)
    profile = base / "long.yaml"
    profile.write_text("name: long\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 3\nwarmup_runs: 6000000\n")
    before = helpers.snapshot(results)
    proc = start("-m", "deploy", "bench", "--bundle", str(bundle), "--host", "board", "--profile", str(profile),
                 HOME=str(home), EDGEKIT_HOME=str(home / ".edgekit"), EDGEKIT_RESULTS=str(results))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not agent_pids(board, "bench", python_only=True):
            time.sleep(0.01)
        # Ctrl-C once the board is measuring (its per-model child exists), the hardest moment: invoke
        # used to swallow the interrupt until the remote command ended (18-32 s), now it returns at once.
        assert helpers.wait_for_measuring_child(agent_pids(board, "bench", python_only=True)[0], timeout=120)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - sent
        gone_by = time.time() + 10                      # the remote agent is stopped: wait until it is gone
        while agent_pids(board, "bench") and time.time() < gone_by:
            time.sleep(0.05)
        still_running = agent_pids(board, "bench")
    finally:
        kill_agents(board)
    return proc.returncode, err, before, results, (took, still_running)


def test_sigint_during_bench_stores_nothing(interrupted_bench):
    code, err, before, results, _ = interrupted_bench
    assert code != 0 and "Traceback" not in err, err[-2000:]
    assert helpers.snapshot(results) == before
    assert leftovers(results) == []
    helpers.count(AREA, "bench interrupted cleanly")


def test_sigint_during_bench_returns_promptly_and_stops_the_agent(interrupted_bench):
    *_, (took, still_running) = interrupted_bench
    # The warm-up alone runs for 40 s or more; "promptly" means seconds, with slack for a loaded CI machine.
    assert took < 10 and still_running == [], f"exit {took:.1f}s after Ctrl-C; still running: {still_running}"
