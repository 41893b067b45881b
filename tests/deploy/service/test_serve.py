"""`deploy serve` / `stop`: the agent's HTTP server runs on the board in the background."""
import json
import time
import urllib.request

import pytest

from emuboard.loopback import free_port
from tests.deploy.conftest import cli

pytestmark = pytest.mark.timeout(120)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_serve_then_stop(first_deploy, client_home, trusted_board, bundle, agent, capsys):
    port = free_port()
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    assert cli("serve", "--bundle", bundle, "--host", trusted_board, "--port", port) == 0
    try:
        assert f"serving int8 on 127.0.0.1:{port}" in capsys.readouterr().out
        status = None
        for _ in range(50):          # the board is this machine, so its 127.0.0.1 is ours
            try:
                status, body = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200, "server did not answer"
        assert json.loads(body) == {"status": "ok", "model": "int8.tflite"}
    finally:
        assert cli("stop", "--host", trusted_board) == 0
    assert "stopped" in capsys.readouterr().out
    assert _health(port, tries=3) is None
    assert cli("stop", "--host", trusted_board) == 0
    assert "no server was running" in capsys.readouterr().out


def _health(port: int, tries: int = 80):
    for _ in range(tries):
        try:
            return get(f"http://127.0.0.1:{port}/health")[0]
        except OSError:
            time.sleep(0.1)
    return None


def test_a_killed_server_is_restarted_by_its_supervisor(first_deploy, client_home, trusted_board, bundle, agent,
                                                         board, session_dir):
    """No user systemd here: the restart loop must bring a crashed server back; stop ends both."""
    import os
    import signal
    import subprocess

    port = free_port()
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    assert cli("serve", "--bundle", bundle, "--host", trusted_board, "--port", port) == 0
    try:
        assert _health(port) == 200
        pgid = int((session_dir / "board" / "serve.pid").read_text())
        servers = subprocess.run(["pgrep", "-g", str(pgid), "-f", "^[^ ]*python[^ ]* .*agent.pyz serve"], capture_output=True,
                                 text=True).stdout.split()
        assert len(servers) == 1
        os.kill(int(servers[0]), signal.SIGKILL)
        again = servers
        for _ in range(300):               # readiness: a new server process (the loop waits 2 s first)
            again = subprocess.run(["pgrep", "-g", str(pgid), "-f", "^[^ ]*python[^ ]* .*agent.pyz serve"],
                                   capture_output=True, text=True).stdout.split()
            if again and again != servers:
                break
            time.sleep(0.05)
        assert again and again != servers, "the supervisor did not start a new server"
        assert _health(port) == 200, "the restarted server does not answer"
    finally:
        assert cli("stop", "--host", trusted_board) == 0
    for _ in range(100):                    # SIGTERM: requests in flight finish, then everything exits
        left = subprocess.run(["pgrep", "-g", str(pgid), "-a"], capture_output=True, text=True).stdout
        if not left.strip():
            break
        time.sleep(0.1)
    assert not left.strip(), f"processes left behind: {left}"
    assert _health(port, tries=3) is None
