"""`deploy push` over a real sshd: runtime, releases, re-deploy sends nothing, failures keep the old."""
import json
import shutil
import threading
import time

import pytest

from device.contract.fileio import sha256_file
from tests.deploy.conftest import cli, release_of
from tests.deploy.make_bundle import big_copy

pytestmark = pytest.mark.timeout(300)


def last_log(client_home):
    return json.loads((client_home / ".edgekit" / "deploy.log").read_text().splitlines()[-1])


def test_first_deploy_installs_runtime_from_a_wheelhouse(first_deploy, board):
    assert first_deploy["runtime"]["installed"] and first_deploy["runtime"]["via"] == "wheelhouse"
    assert first_deploy["runtime"]["runtime"] == "ai-edge-litert==2.3.0"
    assert (board.board_home / "venv" / "bin" / "python").exists()
    rel = board.board_home / "releases" / first_deploy["release"]
    assert release_of(board.board_home) == first_deploy["release"]
    manifest = json.loads((rel / "manifest.json").read_text())
    for v in manifest["variants"].values():
        assert sha256_file(rel / v["file"]) == v["sha256"]
    assert (rel / "agent.pyz").stat().st_size > 1000


def test_redeploy_with_nothing_changed_sends_nothing(first_deploy, client_home, trusted_board, bundle,
                                                      agent, capsys):
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    record = last_log(client_home)
    assert (record["files_sent"], record["bytes_sent"]) == (0, 0)
    assert record["runtime"]["installed"] is False
    assert record["release"] == first_deploy["release"]
    assert "sent 0 files, 0 bytes" in capsys.readouterr().out


def test_changed_bundle_sends_only_the_changed_file(first_deploy, client_home, trusted_board, bundle,
                                                     agent, board, tmp_path):
    changed = tmp_path / "tiny"
    shutil.copytree(bundle, changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["created_utc"] = "2026-11-22T00:00:00Z"
    (changed / "manifest.json").write_text(json.dumps(manifest))
    try:
        assert cli("push", "--bundle", changed, "--host", trusted_board, "--agent", agent) == 0
        record = last_log(client_home)
        assert record["files_sent"] == 1 and record["bytes_sent"] == (changed / "manifest.json").stat().st_size
        assert record["previous"] == first_deploy["release"]
        assert release_of(board.board_home) == record["release"] != first_deploy["release"]
    finally:   # back to the session's release; its blobs are still there, so nothing is sent
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    assert last_log(client_home)["bytes_sent"] == 0
    assert release_of(board.board_home) == first_deploy["release"]


def test_interrupted_upload_leaves_the_previous_release_active(first_deploy, client_home, trusted_board,
                                                                bundle, agent, board, tmp_path, capsys):
    big = big_copy(bundle, tmp_path / "big", 96)
    killed = threading.Event()

    def cut_the_line():
        deadline = time.time() + 60
        while time.time() < deadline and not killed.is_set():
            parts = list((board.board_home / "blobs").glob("*.part"))
            if any(p.stat().st_size > 2 * 1024 * 1024 for p in parts):
                board.kill_sessions()
                killed.set()
            time.sleep(0.005)

    watcher = threading.Thread(target=cut_the_line)
    watcher.start()
    try:
        code = cli("push", "--bundle", big, "--host", trusted_board, "--agent", agent)
    finally:
        killed.set()
        watcher.join()
    assert code == 1
    err = capsys.readouterr().err
    assert "upload of eval.npz failed" in err and "Traceback" not in err
    assert release_of(board.board_home) == first_deploy["release"]
    failed = last_log(client_home)
    assert failed["ok"] is False and "upload of eval.npz failed" in failed["error"]
    current = board.board_home / "current"
    assert sha256_file(current / "eval.npz") == json.loads((current / "manifest.json").read_text())["eval"]["sha256"]
