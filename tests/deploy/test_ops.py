"""Operating boards (issue 15): the running service follows deploys and rollbacks without a failed
request, refuses a model that does not load (deploy exits 1, the old model keeps serving),
pruning keeps exactly KEEP releases and never the served one, and a canary rollout over three
loopback boards stops at the first board when the new model breaks a budget."""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emuboard.loopback import free_port
from tests.deploy.conftest import cli, fleet, release_of, trust

pytestmark = pytest.mark.timeout(600)


def changed_bundle(src: Path, dst: Path, tag: str) -> Path:
    """The same models under a new manifest: a new release id (the served model's sha is the same)."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["created_utc"] = f"2026-01-01T00:00:{tag}Z"
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def broken_bundle(src: Path, dst: Path, junk: bytes) -> Path:
    """int8.tflite replaced by bytes that pass the TFL3 sniff but are no model: it cannot load."""
    shutil.copytree(src, dst)
    data = b"\0\0\0\0TFL3" + junk * 64
    (dst / "int8.tflite").write_bytes(data)
    m = json.loads((dst / "manifest.json").read_text())
    m["variants"]["int8"].update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return json.loads(conn.getresponse().read())


def wait_info(port: int, ready, secs: float = 120) -> dict:
    """Poll GET /info until `ready(info)` (the server may be restarting meanwhile)."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            info = get_json(port, "/info")
            if ready(info):
                return info
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"/info never became ready within {secs}s")


class Load:
    """Clients posting the model's input in a loop; every answer is kept as (status, release)."""

    def __init__(self, port: int, clients: int = 3):
        self.port, self.answers, self.lock = port, [], threading.Lock()
        self.stop = threading.Event()
        spec = get_json(port, "/info")["inputs"][0]
        buf = io.BytesIO()
        np.save(buf, np.zeros([max(1, d) for d in spec["shape"]], dtype=spec["dtype"]))
        self.body = buf.getvalue()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def client(self):
        while not self.stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/infer", body=self.body)
                resp = conn.getresponse()
                out = json.loads(resp.read())
                answer = (resp.status, out.get("release"))
            except (OSError, ValueError) as e:
                answer = (type(e).__name__, None)
            with self.lock:
                self.answers.append(answer)

    def wait_for(self, release: str, secs: float = 60) -> None:
        """Until an answer from `release` arrives (a readiness poll, bounded)."""
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            with self.lock:
                if any(r == release for _, r in self.answers[-50:]):
                    return
            time.sleep(0.05)
        raise AssertionError(f"no answer from release {release} within {secs}s")

    def finish(self) -> list:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return self.answers


def releases_on(home: Path) -> set[str]:
    return {p.name for p in (home / "releases").iterdir() if p.is_dir()}


def used_blobs(home: Path) -> set[str]:
    return {h for r in releases_on(home)
            for h in json.loads((home / "releases" / r / "release.json").read_text())["files"].values()}


def test_local_service_follows_deploy_refuses_broken_rolls_back_and_prunes(
        client_home, board, first_deploy, bundle, agent, tmp_path, capsys):
    edgekit = client_home / ".edgekit"
    os.symlink(board.board_home / "venv", edgekit / "venv")      # the runtime, installed once per session
    b2 = changed_bundle(bundle, tmp_path / "b2", "02")
    b3 = changed_bundle(bundle, tmp_path / "b3", "03")
    bad1 = broken_bundle(bundle, tmp_path / "bad1", b"\x01")
    bad2 = broken_bundle(bundle, tmp_path / "bad2", b"\x02")

    def push(b, *extra):
        return cli("push", "--bundle", b, "--host", "local", "--agent", agent, *extra)

    assert push(bundle) == 0
    r1 = release_of(edgekit)
    port = free_port()
    assert cli("serve", "--bundle", bundle, "--host", "local", "--port", port) == 0
    load = None
    try:
        load = Load(port)
        load.wait_for(r1)
        # 1. a deploy during load: the service moves to the new release
        capsys.readouterr()
        assert push(b2) == 0
        r2 = release_of(edgekit)
        assert "service serves it" in capsys.readouterr().out
        assert get_json(port, "/info")["release"] == r2       # deploy returned after the hand-over
        load.wait_for(r2)
        # 2. a model that does not load: exit 1 with the reason, the old model keeps serving
        assert push(bad1) == 1
        err = capsys.readouterr().err
        assert "NOT served" in err and "keeps serving " + r2 in err
        rb1 = release_of(edgekit)
        assert rb1 not in (r1, r2)                               # installed, current, not served
        info = get_json(port, "/info")
        assert info["release"] == r2 and info["switch_error"]["release"] == rb1
        load.wait_for(r2)
        # 3. rollback walks back one release at a time; the service follows each
        assert cli("rollback", "--host", "local") == 0            # broken -> r2 (already served)
        assert release_of(edgekit) == r2
        assert cli("rollback", "--host", "local") == 0            # r2 -> r1
        assert release_of(edgekit) == r1 and get_json(port, "/info")["release"] == r1
        load.wait_for(r1)
        assert cli("rollback", "--host", "local", "--release", r2) == 0
        assert get_json(port, "/info")["release"] == r2
        assert cli("rollback", "--host", "local", "--release", "f" * 12) == 1
        # 4. pruning after a successful deploy: exactly KEEP releases, unused blobs removed, freed said
        capsys.readouterr()
        assert push(b3, "--keep", "3") == 0
        r3 = release_of(edgekit)
        out = capsys.readouterr().out
        assert "pruned 1 release(s), freed" in out and "freed 0 bytes" not in out
        assert releases_on(edgekit) == {r3, r2, r1}               # the broken one was least recently used
        assert {p.name for p in (edgekit / "blobs").iterdir()} == used_blobs(edgekit)
        # 5. never the served one: two refused deploys leave current != served; KEEP=2 keeps both
        assert cli("rollback", "--host", "local", "--release", r1) == 0
        assert push(bad1) == 1 and push(bad2) == 1
        rb2 = release_of(edgekit)
        assert get_json(port, "/info")["release"] == r1
        from deploy.releases.manage import prune
        from deploy.targets.local import LocalTarget
        answer = prune(LocalTarget(), str(edgekit), 2)
        assert releases_on(edgekit) == {rb2, r1}, answer
        # `make releases` shows it
        capsys.readouterr()
        assert cli("releases", "--host", "local") == 0
        rows = {l.split()[0]: l for l in capsys.readouterr().out.splitlines() if l.startswith("  ")}
        assert rows[r1].rstrip().endswith("*") and "*" in rows[rb2]
    finally:
        answers = load.finish() if load else []
        assert cli("stop", "--host", "local") == 0
    failed = [a for a in answers if a[0] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:5]}"
    assert {r for _, r in answers} == {r1, r2, r3}
    assert len(answers) > 50


@pytest.fixture
def three_boards(board, first_deploy, tmp_path):
    with fleet(board, tmp_path, 3) as servers:
        yield servers


PROFILE = "name: {name}\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 5\nwarmup_runs: 1\nvariants: [int8]\n"


def test_canary_stops_at_the_first_board_when_a_budget_breaks(client_home, three_boards, bundle, agent,
                                                               tmp_path, capsys):
    hosts = [trust(client_home, s, alias=f"pi{i}") for i, s in enumerate(three_boards)]
    homes = [s.board_home for s in three_boards]
    assert cli("push", "--bundle", bundle, "--hosts", ",".join(hosts), "--agent", agent) == 0
    old = release_of(homes[0])
    new_bundle = changed_bundle(bundle, tmp_path / "new", "09")
    strict = tmp_path / "strict.yaml"
    strict.write_text(PROFILE.format(name="strict") + "budgets:\n  max_p50_us: 0.001\n")
    before = [sorted(os.listdir(h / "releases")) for h in homes[1:]]
    capsys.readouterr()
    assert cli("push", "--bundle", new_bundle, "--hosts", ",".join(hosts), "--agent", agent,
               "--rollout", "canary", "--profile", strict) == 1
    out = capsys.readouterr().out
    assert "STOPPED at batch 1" in out and "BUDGET BROKEN" in out
    assert release_of(homes[0]) == old, "the canary was not rolled back"
    assert [sorted(os.listdir(h / "releases")) for h in homes[1:]] == before, "a later board was touched"
    assert [release_of(h) for h in homes[1:]] == [old, old]
    table = {l.split()[0]: l for l in out.splitlines() if l.startswith("  pi")}
    assert old in table["pi0"] and "FAILED" in table["pi0"] and "untouched" in table["pi2"]
    # a passing rollout, two boards at a time after the canary, reaches every board
    loose = tmp_path / "loose.yaml"
    loose.write_text(PROFILE.format(name="loose") + "budgets:\n  max_p50_us: 10000000\n")
    assert cli("push", "--bundle", new_bundle, "--hosts", ",".join(hosts), "--agent", agent,
               "--rollout", "rolling", "--batch", "2", "--profile", loose) == 0
    new = release_of(homes[0])
    assert new != old and [release_of(h) for h in homes] == [new] * 3



def test_a_rollout_with_an_unreachable_board_does_not_start(client_home, bundle, agent, capsys):
    """Every board is asked first; one that cannot be reached stops the rollout before any change."""
    assert cli("push", "--bundle", bundle, "--hosts", f"local,root@127.0.0.1:{free_port()}", "--agent", agent,
               "--rollout", "canary") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "deploy: error: rollout not started: 1 board(s) unreachable"
    assert not (client_home / ".edgekit" / "releases").exists(), "the local board was changed"

def test_service_on_an_ssh_board_follows_deploy_and_rollback(first_deploy, client_home, trusted_board, board,
                                                             bundle, agent, tmp_path, capsys):
    """The same hand-over through a real sshd: deploy waits for the board's service, rollback too."""
    changed = changed_bundle(bundle, tmp_path / "ssh-new", "42")
    assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    old = release_of(board.board_home)
    port = free_port()
    assert cli("serve", "--bundle", bundle, "--host", trusted_board, "--port", port) == 0
    try:
        assert get_json(port, "/info")["release"] == old          # serve returned once /info answered
        assert cli("push", "--bundle", changed, "--host", trusted_board, "--agent", agent) == 0
        new = release_of(board.board_home)
        assert new != old and get_json(port, "/info")["release"] == new
        capsys.readouterr()
        assert cli("releases", "--host", trusted_board) == 0
        rows = {l.split()[0]: l for l in capsys.readouterr().out.splitlines() if l.startswith("  ")}
        assert rows[new].count("*") == 2 and "*" not in rows[old]
        # a crash after a refused deploy restarts into the last served release, not the broken current
        broken = broken_bundle(bundle, tmp_path / "ssh-broken", b"\x03")
        assert cli("push", "--bundle", broken, "--host", trusted_board, "--agent", agent) == 1
        bad = release_of(board.board_home)
        pid = json.loads((board.board_home / "serve.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        info = wait_info(port, lambda i: i.get("switch_error") and i["switch_error"]["release"] == bad
                         and json.loads((board.board_home / "serve.json").read_text())["pid"] != pid)
        assert info["release"] == new
        assert cli("rollback", "--host", trusted_board, "--release", old) == 0
        assert get_json(port, "/info")["release"] == old
    finally:
        assert cli("stop", "--host", trusted_board) == 0
