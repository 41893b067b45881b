"""`deploy profile` (make profile) over a real sshd with the real agent and real .tflite models."""
import json

import pytest

from device.contract.schema import validate
from tests.deploy.conftest import cli

pytestmark = pytest.mark.timeout(300)


def _profiles(client_home, host="board"):
    d = client_home.parent / "results" / host
    return sorted(d.glob("*-profile.json")) if d.exists() else []


def test_profile_stores_a_profile_result(first_deploy, client_home, trusted_board, bundle, capsys, tmp_path):
    profile = tmp_path / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nthreads: [1, 2]\nnum_runs: 5\nwarmup_runs: 1\n")
    assert cli("profile", "--bundle", bundle, "--host", trusted_board, "--profile", profile) == 0
    out = capsys.readouterr().out
    [path] = _profiles(client_home)
    doc = json.loads(path.read_text())
    validate(doc)
    assert doc["command"] == "profile" and doc["deploy"]["release"] == first_deploy["release"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert sorted(r["variant"] for r in doc["results"]) == sorted(manifest["variants"])
    for r in doc["results"]:
        prof = r["profile"]
        assert r["status"] == "ok" and prof["threads"] == 1          # the profile's first thread count
        assert len(prof["ops"]) == r["model"]["ops_total"] and prof["whole_p50_us"] > 0
        assert r["memory_plan"]["arena_bytes"] > 0 and r["model"]["sha256"] == manifest["variants"][r["variant"]]["sha256"]
    assert "memory plan:" in out and path.name in out

    before = path.read_bytes()   # VARIANT=int8: one more file, the first one untouched
    assert cli("profile", "--bundle", bundle, "--host", trusted_board, "--profile", profile, "--variant", "int8") == 0
    files = _profiles(client_home)
    assert len(files) == 2 and path.read_bytes() == before
    assert [r["variant"] for r in json.loads(files[-1].read_text())["results"]] == ["int8"]


def test_profile_unknown_variant_is_one_line(first_deploy, client_home, trusted_board, bundle, capsys):
    assert cli("profile", "--bundle", bundle, "--host", trusted_board, "--variant", "nope") == 2   # bad input
    err = capsys.readouterr().err
    assert "has no variant 'nope'" in err and "Traceback" not in err
    assert not _profiles(client_home)


def test_profile_cut_on_host_ships_the_pieces(first_deploy, client_home, trusted_board, board, bundle, tmp_path):
    """What a tflite-runtime board gets (forced here): pieces cut on the host, timed on the board,
    and removed from the board afterwards."""
    profile = tmp_path / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nnum_runs: 5\nwarmup_runs: 1\n")
    assert cli("profile", "--bundle", bundle, "--host", trusted_board, "--profile", profile,
               "--variant", "int8", "--cut-on-host") == 0
    [path] = _profiles(client_home)
    doc = json.loads(path.read_text())
    [r] = doc["results"]
    assert r["profile"]["cut_elsewhere"] and all(o["latency_us"] is not None for o in r["profile"]["ops"])
    assert "--pieces" in doc["agent"]["argv"]
    leftovers = board.board_home / "tmp"
    assert not leftovers.exists() or not any(leftovers.iterdir())
