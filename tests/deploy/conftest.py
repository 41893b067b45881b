"""Fixtures for the deploy tests: a real sshd on loopback, a tiny real bundle, the agent.

HOME and EDGEKIT_HOME point to temp dirs for every test, so the real ~/.ssh and ~/.edgekit
are never read or written.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emuboard import loopback as sshd_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session", autouse=True)
def shared_cache(session_dir):
    """Wheelhouses and the built agent are reused across tests (and runs, via EDGEKIT_TEST_CACHE)."""
    cache = os.environ.get("EDGEKIT_TEST_CACHE") or str(session_dir / "cache")
    old = os.environ.get("EDGEKIT_CACHE")
    os.environ["EDGEKIT_CACHE"] = cache
    yield Path(cache)
    if old is None:
        os.environ.pop("EDGEKIT_CACHE", None)
    else:
        os.environ["EDGEKIT_CACHE"] = old


@pytest.fixture
def client_home(tmp_path, monkeypatch) -> Path:
    """A fresh user on the host side: its own HOME (~/.ssh) and EDGEKIT_HOME, nothing trusted yet."""
    home = tmp_path / "home"
    (home / ".edgekit").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("EDGEKIT_HOME", str(home / ".edgekit"))
    monkeypatch.setenv("EDGEKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("EDGEKIT_CONNECT_TIMEOUT", "5")
    monkeypatch.delenv("TRUST_NEW_HOST", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture(scope="session")
def board(session_dir):
    """One real sshd for the session; its board state persists so the runtime installs once."""
    reason = sshd_tool.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = sshd_tool.start(session_dir / "sshd", board_home=session_dir / "board")
    yield server
    server.stop()


def trust(client_home: Path, board: sshd_tool.Sshd, alias: str = "board") -> str:
    """Pin the board's host key and give it an ssh-config alias, as the board tool does."""
    edgekit = client_home / ".edgekit"
    with open(edgekit / "known_hosts", "a") as f:
        f.write(board.host_key_line + "\n")
    with open(edgekit / "ssh_config", "a") as f:
        f.write(f"Host {alias}\n  HostName 127.0.0.1\n  Port {board.port}\n  User root\n"
                f"  IdentityFile {board.client_key}\n  IdentitiesOnly yes\n")
    return alias


@contextlib.contextmanager
def fleet(board: sshd_tool.Sshd, base: Path, count: int):
    """`count` more real sshd boards, each with its own home; the runtime venv is the session
    board's (installed once by `first_deploy`). Stopped on the way out."""
    servers = []
    try:
        for i in range(count):
            home = base / f"fleet{i}"
            home.mkdir()
            os.symlink(board.board_home / "venv", home / "venv")
            servers.append(sshd_tool.start(base / f"sshd-fleet{i}", board_home=home))
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def trusted_board(client_home, board) -> str:
    return trust(client_home, board)


@pytest.fixture(scope="session")
def bundle(session_dir) -> Path:
    out = session_dir / "bundles" / "tiny"
    subprocess.run([sys.executable, "-m", "tests.deploy.make_bundle", str(out)], cwd=REPO, check=True,
                   capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return out


@pytest.fixture(scope="session")
def agent(session_dir, shared_cache) -> Path:
    """The real agent, built by device's builder (the same path `make deploy` takes)."""
    from deploy.releases.agent import build_agent
    return build_agent()


def cli(*args: str) -> int:
    """`python -m deploy ARGS` in-process (output goes to capsys/capfd)."""
    from deploy.__main__ import main
    return main([str(a) for a in args])


def release_of(board_home: Path) -> str | None:
    link = board_home / "current"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


@pytest.fixture(scope="session")
def first_deploy(board, bundle, agent, session_dir):
    """The session's one runtime install, through the offline path (a host-built wheelhouse)."""
    home = session_dir / "first-client"
    (home / ".edgekit").mkdir(parents=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("HOME", str(home))
    mp.setenv("EDGEKIT_HOME", str(home / ".edgekit"))
    try:
        alias = trust(home, board)
        code = cli("push", "--bundle", bundle, "--host", alias, "--agent", agent, "--wheelhouse")
        log = [json.loads(l) for l in (home / ".edgekit" / "deploy.log").read_text().splitlines()]
    finally:
        mp.undo()
    assert code == 0
    return log[-1]
