"""Both targets under load and at their edges: every stderr line kept, timeouts end the remote
command for real, relayed lines end cleanly, ProxyJump hops are held to the same host-key rules."""
import os
import time

import pytest

from deploy.errors import DeployError
from deploy.releases.ship import board_call
from deploy.targets.local import LocalTarget
from deploy.targets.ssh import SSHTarget
from emuboard import loopback as sshd_tool
from emuboard.loopback import keygen

pytestmark = pytest.mark.timeout(90)

MANY_LINES = "i=0; while [ $i -lt 300 ]; do echo err$i >&2; echo out$i; i=$((i+1)); done"


def test_local_target_keeps_every_stderr_line():
    for stream in (False, True) * 4:          # the old two-readers race lost lines most runs
        res = LocalTarget().run(MANY_LINES, stream=stream, stdin="ignored input\n")
        assert res.stderr.splitlines() == [f"err{i}" for i in range(300)]
        assert res.stdout.splitlines() == [f"out{i}" for i in range(300)]
    assert LocalTarget().run("cat", stdin="fed through stdin").stdout == "fed through stdin"


def test_local_target_errors_are_deploy_errors(tmp_path):
    with pytest.raises(DeployError, match="timed out"):
        LocalTarget().run("sleep 5", timeout=0.5)
    with pytest.raises(DeployError, match="copy of a.txt to .* failed"):
        src = tmp_path / "a.txt"
        src.write_text("x")
        LocalTarget().put(src, str(tmp_path / "no-such-dir" / "a.txt"))


@pytest.mark.parametrize("reply", ["", "not json at all"])
def test_board_reply_that_is_not_json_is_one_line(tmp_path, monkeypatch, reply):
    """A board whose python3 answers nothing (or garbage) with exit 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nprintf '%s' '{reply}'\nexit 0\n")
    (bin_dir / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(DeployError, match="local: release inventory gave no answer"):
        board_call(LocalTarget(), "inventory", {"home": str(tmp_path), "files": {}})


def test_relayed_stderr_lines_end_with_a_newline(client_home, trusted_board, capfd):
    LocalTarget().run("printf 'local warning' >&2", stream=True)
    t = SSHTarget(trusted_board)
    try:
        t.run("printf 'ssh warning' >&2", stream=True)
    finally:
        t.close()
    err = capfd.readouterr().err
    assert "local warning\n" in err and "ssh warning\n" in err


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_ssh_timeout_ends_the_remote_command(client_home, trusted_board, tmp_path):
    pid_file = tmp_path / "remote.pid"
    t = SSHTarget(trusted_board)
    try:
        started = time.monotonic()
        with pytest.raises(DeployError, match="timed out after 2s"):
            t.run(f"sh -c 'echo $$ > {pid_file}; exec sleep 97'", timeout=2)
        assert time.monotonic() - started < 10
        assert t.run("echo still usable", timeout=10).stdout.strip() == "still usable"
    finally:
        t.close()
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the remote command outlived its timeout"


@pytest.fixture
def jump_host(tmp_path, board):
    server = sshd_tool.start(tmp_path / "jump")
    yield server
    server.stop()


def via_jump(client_home, board, jump, jump_key_line):
    edgekit = client_home / ".edgekit"
    with open(edgekit / "known_hosts", "w") as f:
        f.write(board.host_key_line + "\n" + (jump_key_line + "\n" if jump_key_line else ""))
    (edgekit / "ssh_config").write_text(
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump.port}\n  User root\n"
        f"  IdentityFile {jump.client_key}\n  IdentitiesOnly yes\n"
        f"Host behind\n  HostName 127.0.0.1\n  Port {board.port}\n  User root\n"
        f"  IdentityFile {board.client_key}\n  IdentitiesOnly yes\n  ProxyJump jumpy\n")
    return "behind"


def test_proxyjump_hop_host_keys_are_verified(client_home, board, jump_host, tmp_path):
    with pytest.raises(DeployError, match=f"unknown host key for \\[127.0.0.1\\]:{jump_host.port}"):
        SSHTarget(via_jump(client_home, board, jump_host, None))
    other = tmp_path / "other_key"
    keygen(other)
    kind, b64 = other.with_suffix(".pub").read_text().split()[:2]
    with pytest.raises(DeployError, match="HOST KEY CHANGED"):
        SSHTarget(via_jump(client_home, board, jump_host, f"[127.0.0.1]:{jump_host.port} {kind} {b64}"))
    t = SSHTarget(via_jump(client_home, board, jump_host, jump_host.host_key_line))
    try:
        assert t.run("echo $EDGEKIT_HOME").stdout.strip() == str(board.board_home)
    finally:
        t.close()
