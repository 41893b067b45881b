"""The SSH target against a real sshd: host keys verified, errors are one clear line."""
import subprocess
import sys

import pytest

from deploy.errors import DeployError
from deploy.targets.ssh import SSHTarget
from emuboard.loopback import free_port, keygen
from tests.deploy.conftest import REPO, trust

pytestmark = pytest.mark.timeout(60)


def key_args(board):
    return dict(ssh_key=str(board.client_key))


def test_run_and_put(client_home, trusted_board, tmp_path):
    t = SSHTarget(trusted_board)
    try:
        assert not t.local
        res = t.run("echo out; echo err >&2; exit 3")
        assert (res.code, res.stdout.strip(), res.stderr.strip()) == (3, "out", "err")
        src = tmp_path / "a b.txt"
        src.write_text("payload")
        t.put(src, str(tmp_path / "copy.txt"))
        assert (tmp_path / "copy.txt").read_text() == "payload"
    finally:
        t.close()


def test_unknown_host_is_refused_with_how_to_trust(client_home, board):
    with pytest.raises(DeployError) as e:
        SSHTarget(board.spec, **key_args(board))
    msg = str(e.value)
    assert "unknown host key" in msg and "ssh-keyscan -p" in msg and "TRUST_NEW_HOST=1" in msg
    assert not (client_home / ".ssh" / "known_hosts").exists()


def test_trust_new_host_records_the_key_like_accept_new(client_home, board):
    SSHTarget(board.spec, trust_new_host=True, **key_args(board)).close()
    recorded = (client_home / ".ssh" / "known_hosts").read_text()
    assert board.host_key_line in recorded
    SSHTarget(board.spec, **key_args(board)).close()     # now known: no opt-in needed


def test_changed_host_key_is_refused_even_with_opt_in(client_home, board, tmp_path):
    other = tmp_path / "other_key"
    keygen(other)
    kind, b64 = other.with_suffix(".pub").read_text().split()[:2]
    (client_home / ".ssh").mkdir()
    (client_home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{board.port} {kind} {b64}\n")
    for opt_in in (False, True):
        with pytest.raises(DeployError, match="HOST KEY CHANGED"):
            SSHTarget(board.spec, trust_new_host=opt_in, **key_args(board))


def test_alias_from_edgekit_ssh_config(client_home, board):
    alias = trust(client_home, board, alias="pi-alias")
    t = SSHTarget(alias)
    assert t.run("echo $EDGEKIT_HOME").stdout.strip() == str(board.board_home)
    t.close()


def test_auth_failure_unreachable_and_dns_are_one_line_errors(client_home, board, tmp_path):
    trust(client_home, board)
    wrong = tmp_path / "wrong_key"
    keygen(wrong)
    with pytest.raises(DeployError, match="authentication failed"):
        SSHTarget(board.spec, ssh_key=str(wrong))
    with pytest.raises(DeployError, match="unreachable"):
        SSHTarget(f"root@127.0.0.1:{free_port()}")
    with pytest.raises(DeployError, match="cannot resolve host"):
        SSHTarget("root@no-such-board.invalid")


def test_cli_error_is_one_line_without_traceback(client_home, board, bundle):
    res = subprocess.run([sys.executable, "-m", "deploy", "push", "--bundle", str(bundle),
                          "--host", f"root@127.0.0.1:{free_port()}"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert "FAILED" in lines[-1] and "unreachable" in lines[-1]
    bad = subprocess.run([sys.executable, "-m", "deploy", "push", "--bundle", str(REPO), "--host", "local"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"deploy: error: {REPO} is not a bundle (no manifest.json); run `make quantize` first"]
