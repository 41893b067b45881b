"""Hostile names: spaces, quotes, `;`, `$(...)`, backticks and non-ASCII in model files, bundle names,
board directories and HOST values are handled or refused, never run by a shell.

Every name tries to create a marker file; the marker must never appear.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device.contract.fileio import sha256_file
from device.contract.schema import validate
from tests.deploy.conftest import cli, release_of
from tests.reliability import helpers

pytestmark = pytest.mark.timeout(300)
AREA = "Hostile names"


def hostile(marker_dir=None, quotes: str = "\"'") -> str:
    """A name that creates the marker if any shell ever runs it. A file name cannot hold a `/`,
    so without `marker_dir` the marker is relative (see WHERE_A_SHELL_WOULD_WRITE)."""
    m = marker_dir / helpers.MARKER if marker_dir else helpers.MARKER
    return f"x {quotes} ;touch {m}; $(touch {m}) `touch {m}` ü"


def assert_no_marker(*where) -> None:
    """No marker in the given trees, nor where a relative `touch` would land (the shells' cwd)."""
    places = [*where, helpers.REPO, Path("/root"), Path.cwd()]
    found = [str(p) for w in where for p in w.rglob(helpers.MARKER)]
    found += [str(w / helpers.MARKER) for w in places if (w / helpers.MARKER).exists()]
    assert not found, f"a name was run by a shell: {found}"


@pytest.mark.parametrize("host", ["bo ard;touch {m}", "$(touch {m})", "`touch {m}`", "a'b\"c", "pï@bøard:22",
                                  "x;touch {m}@127.0.0.1", "root@127.0.0.1:22;touch {m}", "-oProxyCommand=touch {m}"])
def test_hostile_host_values_are_refused(host, client_home, bundle, tmp_path, capsys):
    spec = host.format(m=tmp_path / helpers.MARKER)
    for command in ("push", "bench"):
        code = cli(command, "--bundle", bundle, "--host", spec)
        err = capsys.readouterr().err
        assert code in (1, 2) and "Traceback" not in err     # 2: malformed, refused up front; 1: no such board
        assert len(helpers.failure_lines(err)) == 1
    assert_no_marker(tmp_path)
    helpers.count(AREA, "hostile HOST values refused")


def hostile_bundle(bundle, tmp_path):
    """The tiny bundle under a hostile directory and bundle name, with a hostile model file name."""
    name = hostile(tmp_path)
    out = tmp_path / name
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"] = hostile()          # the short form: a result file is named after it
    model = f"fp 32 {hostile()}.tflite"
    (out / "fp32.tflite").rename(out / model)
    manifest["variants"]["fp32"]["file"] = model
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, model


def test_hostile_bundle_and_model_names_over_ssh(first_deploy, client_home, trusted_board, bundle, agent, board,
                                                 quick_profile, tmp_path, capsys):
    out, model = hostile_bundle(bundle, tmp_path)
    try:
        assert cli("push", "--bundle", out, "--host", trusted_board, "--agent", agent) == 0
        current = board.board_home / "current"
        assert sha256_file(current / model) == sha256_file(out / model)
        assert cli("bench", "--bundle", out, "--host", trusted_board, "--profile", quick_profile) == 0
        [path] = (client_home.parent / "results" / "board").glob("*.json")
        doc = json.loads(path.read_text())
        validate(doc)
        assert {r["model"]["name"] for r in doc["results"]} == {model, "int8.tflite"}
        assert all(r["status"] == "ok" for r in doc["results"])
        assert "Traceback" not in capsys.readouterr().err
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0
    assert_no_marker(tmp_path)
    assert_no_marker(board.board_home)
    assert release_of(board.board_home) == first_deploy["release"]
    helpers.count(AREA, "hostile bundle/model names deployed and benchmarked over SSH")


def test_long_bundle_name_result_is_still_stored(first_deploy, client_home, trusted_board, bundle, agent, board,
                                                 quick_profile, tmp_path, capsys):
    out = tmp_path / "tiny"
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"] = "n" * 300 + "-ü"
    (out / "manifest.json").write_text(json.dumps(manifest))
    try:
        assert cli("push", "--bundle", out, "--host", trusted_board, "--agent", agent) == 0
        code = cli("bench", "--bundle", out, "--host", trusted_board, "--profile", quick_profile)
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code == 0, err
        [path] = (client_home.parent / "results" / "board").glob("*.json")
        validate(json.loads(path.read_text()))
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0


def test_hostile_board_directory_over_ssh(first_deploy, client_home, board, bundle, agent, quick_profile, tmp_path,
                                          capsys):
    """The board's EDGEKIT_HOME itself is hostile (sshd sets it); the runtime venv is the board's own."""
    home = tmp_path / hostile(tmp_path, quotes="'")       # sshd_config cannot carry a double quote
    home.mkdir(parents=True)
    os.symlink(board.board_home / "venv", home / "venv")
    server = helpers.start_sshd_like(board, tmp_path / "sshd", board_home=home)
    try:
        host = helpers.alias(client_home, "hostile", server.port, board.client_key, server.host_key_line)
        assert cli("push", "--bundle", bundle, "--host", host, "--agent", agent) == 0
        assert release_of(home) == first_deploy["release"]
        assert cli("bench", "--bundle", bundle, "--host", host, "--profile", quick_profile) == 0
        [path] = (client_home.parent / "results" / "hostile").glob("*.json")
        validate(json.loads(path.read_text()))
        assert "Traceback" not in capsys.readouterr().err
    finally:
        server.stop()
    assert_no_marker(tmp_path)
    helpers.count(AREA, "hostile board directory over SSH")


def test_hostile_board_directory_local(first_deploy, client_home, board, bundle, agent, quick_profile, tmp_path,
                                       monkeypatch, capsys):
    """HOST=local with a hostile EDGEKIT_HOME (every quote kind): the same shell commands, no SSH layer."""
    home = tmp_path / hostile(tmp_path) / ".edgekit"
    home.mkdir(parents=True)
    os.symlink(board.board_home / "venv", home / "venv")
    monkeypatch.setenv("EDGEKIT_HOME", str(home))
    assert cli("push", "--bundle", bundle, "--host", "local", "--agent", agent) == 0
    assert release_of(home) == first_deploy["release"]
    assert cli("bench", "--bundle", bundle, "--host", "local", "--profile", quick_profile) == 0
    [path] = (client_home.parent / "results" / "local").glob("*.json")
    validate(json.loads(path.read_text()))
    assert "Traceback" not in capsys.readouterr().err
    assert_no_marker(tmp_path)
    helpers.count(AREA, "hostile board directory (HOST=local)")


@pytest.mark.parametrize("host", ['a" ; touch {m} ; echo "', "`touch {m}`"])
def test_hostile_host_through_make(host, tmp_path, bundle):
    """`make bench HOST=...` as a user types it: the Makefile must not hand HOST to a shell unquoted."""
    marker = tmp_path / helpers.MARKER
    proc = subprocess.run(["make", "-s", "bench", f"HOST={host.format(m=marker)}", f"BUNDLE={bundle}"],
                          cwd=helpers.REPO, env=helpers.python_env(EDGEKIT_RESULTS=str(tmp_path / "results"),
                                                                   EDGEKIT_HOME=str(tmp_path / "ek")),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert not marker.exists(), "HOST was interpreted by the Makefile's shell"
    helpers.count(AREA, "hostile HOST through make refused")
