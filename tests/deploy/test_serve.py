"""`deploy serve` / `stop`: the agent's HTTP server runs on the board in the background."""
import json
import time
import urllib.request

import pytest

from tests.deploy.conftest import cli
from tests.deploy.sshd import free_port

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
        assert json.loads(body)
    finally:
        assert cli("stop", "--host", trusted_board) == 0
    assert "stopped" in capsys.readouterr().out
    time.sleep(0.5)
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/health")
    assert cli("stop", "--host", trusted_board) == 0
    assert "no server was running" in capsys.readouterr().out
