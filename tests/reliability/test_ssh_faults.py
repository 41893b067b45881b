"""SSH faults against a real sshd on 127.0.0.1: refused, auth, unknown/changed host key, dropped links.

Each: one line naming the board and the step, exit 1, the previous release still active,
earlier results untouched, nothing stored as a result.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from emuboard import loopback as sshd_tool
from tests.deploy.conftest import cli, release_of
from tests.deploy.make_bundle import big_copy
from tests.reliability import helpers

pytestmark = pytest.mark.timeout(300)
AREA = "SSH and board faults"


def setup_fault(fault: str, client_home, board, tmp_path) -> str:
    if fault == "refused":
        return helpers.alias(client_home, "board", sshd_tool.free_port(), board.client_key, None)
    if fault == "auth":
        stranger = tmp_path / "stranger_ed25519"
        sshd_tool.keygen(stranger)
        return helpers.alias(client_home, "board", board.port, stranger, board.host_key_line)
    if fault == "unknown_key":
        return helpers.alias(client_home, "board", board.port, board.client_key, None)
    if fault == "changed_key":
        other = tmp_path / "other_host_ed25519"
        sshd_tool.keygen(other)
        pub = other.with_suffix(".pub").read_text().split()
        line = f"[127.0.0.1]:{board.port} {pub[0]} {pub[1]}"
        return helpers.alias(client_home, "board", board.port, board.client_key, line)
    raise ValueError(fault)


@pytest.mark.parametrize("fault, says", [("refused", "unreachable"), ("auth", "authentication failed"),
                                         ("unknown_key", "unknown host key"), ("changed_key", "HOST KEY CHANGED")])
@pytest.mark.parametrize("command", ["push", "bench"])
def test_connection_faults(fault, says, command, first_deploy, client_home, board, bundle, agent, earlier_result,
                           tmp_path, capsys):
    host = setup_fault(fault, client_home, board, tmp_path)
    known = (client_home / ".edgekit" / "known_hosts")
    known_before = known.read_bytes() if known.exists() else None
    before = helpers.snapshot(earlier_result)
    args = ["--bundle", bundle, "--host", host] + (["--agent", agent] if command == "push" else [])
    assert cli(command, *args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = helpers.failure_lines(err)
    assert "board" in line and says in line, line
    assert release_of(board.board_home) == first_deploy["release"]
    assert helpers.snapshot(earlier_result) == before                 # nothing added, nothing changed
    assert (known.read_bytes() if known.exists() else None) == known_before   # nothing trusted silently
    helpers.count(AREA, f"{fault} ({command}) refused cleanly")


def test_connection_dropped_mid_upload(first_deploy, client_home, trusted_board, bundle, agent, board,
                                       earlier_result, tmp_path, capsys):
    big = big_copy(bundle, tmp_path / "big", 96)
    before = helpers.snapshot(earlier_result)
    done = threading.Event()

    blobs = board.board_home / "blobs"
    stale = {p.name for p in blobs.glob("*.part")}      # left by earlier interrupted deploys

    def cut():
        while not done.is_set():
            if helpers.uploading(blobs, stale):
                board.kill_sessions()
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=cut)
    watcher.start()
    try:
        code, _, err = helpers.deploy_cli("push", "--bundle", big, "--host", trusted_board, "--agent", agent)
    finally:
        done.set()
        watcher.join()
    try:
        assert code == 1 and "Traceback" not in err
        [line] = helpers.failure_lines(err)
        assert "board" in line and "upload of eval.npz failed" in line
        assert release_of(board.board_home) == first_deploy["release"]
        assert helpers.snapshot(earlier_result) == before
    finally:   # the next deploy of the good bundle still works (and restores the release if the cut missed)
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    helpers.count(AREA, "connection dropped mid-upload handled")


def test_connection_dropped_mid_bench(first_deploy, client_home, trusted_board, bundle, board, earlier_result,
                                      tmp_path, capsys):
    profile = tmp_path / "long.yaml"
    profile.write_text("name: long\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 3\n"
                       "warmup_runs: 3000000\n")    # warm-up is not capped by max_samples: seconds
    before = helpers.snapshot(earlier_result)
    done = threading.Event()

    def cut():
        while not done.is_set():
            pids = agent_pids(board, "bench", python_only=True)
            if pids:
                helpers.wait_for_measuring_child(pids[0])   # readiness: it is in the measurement
                board.kill_sessions()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=cut)
    watcher.start()
    try:
        code, _, err = helpers.deploy_cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile)
    finally:
        done.set()
        watcher.join()
        kill_agents(board)
    assert code == 1 and "Traceback" not in err
    helpers.assert_untouched(before, earlier_result)
    assert release_of(board.board_home) == first_deploy["release"]
    [line] = helpers.failure_lines(err)
    assert "board" in line and "bench" in line, line
    assert len(helpers.rejected(earlier_result)) == 1        # the partial output, kept aside
    helpers.count(AREA, "connection dropped mid-bench handled")


def agent_pids(board, command: str, python_only: bool = False) -> list[int]:
    """The agent processes running `command` on this board, and their isolated children
    (python_only: just the agent's own python process, not the `sh -c` around it)."""
    import subprocess
    out = subprocess.run(["pgrep", "-f", f"{board.board_home}/.*agent.pyz {command}"], capture_output=True,
                         text=True).stdout
    pids = [int(p) for p in out.split()]
    if python_only:
        def is_python(pid: int) -> bool:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    return b"python" in f.read().split(b"\0")[0]
            except OSError:
                return False
        return [p for p in pids if is_python(p)]
    for pid in list(pids):
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(k) for k in kids.split()]
    return pids


def kill_agents(board) -> None:
    """Clean-up: end every process working in this test board's home (its agents and their
    isolated children, orphaned when the connection dropped). Only processes this suite started."""
    home = str(board.board_home).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if b"sshd" not in cmdline and (home in cmdline or home in environ):
            try:
                os.kill(int(entry), 9)
            except ProcessLookupError:
                pass
