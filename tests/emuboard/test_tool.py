"""The board tool's own plumbing, without starting a board: refusal messages and ssh entries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emuboard import image, network, sshconfig

REPO = Path(__file__).resolve().parents[2]


def test_ssh_entries_are_written_and_removed_per_board(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "ssh_config").write_text("Host mine\n  HostName 192.0.2.9\n")
    (home / "known_hosts").write_text("mine ssh-ed25519 AAAAmine\n")
    def write(index: int) -> None:
        sshconfig.write_entries(home, name=f"edgekit-board{index}", address=f"10.213.{index}.2",
                                port=22, user="pi", identity=tmp_path / f"key{index}",
                                host_key_pub=f"ssh-ed25519 AAAA{index} root@x\n")

    for index in (1, 10, 1):  # board1 twice: a restart replaces its entries
        write(index)
    config = (home / "ssh_config").read_text()
    assert config.count("Host edgekit-board1\n") == 1 and "Host edgekit-board10\n" in config
    assert "HostName 10.213.1.2" in config and f"IdentityFile {tmp_path / 'key1'}" in config
    known = (home / "known_hosts").read_text().splitlines()
    assert "edgekit-board1,10.213.1.2 ssh-ed25519 AAAA1" in known
    sshconfig.remove_entries(home, name="edgekit-board1", address="10.213.1.2")
    config = (home / "ssh_config").read_text()
    assert "Host edgekit-board1\n" not in config and "Host edgekit-board10\n" in config
    assert (home / "known_hosts").read_text().splitlines() == [
        "mine ssh-ed25519 AAAAmine", "edgekit-board10,10.213.10.2 ssh-ed25519 AAAA10"]
    assert "Host mine\n" in (home / "ssh_config").read_text()  # the user's own entries stay


def test_recipe_key_changes_with_the_recipe():
    assert image.recipe_key() == image.recipe_key()
    other = image.Recipe(packages=image.Recipe().packages + ("curl",))
    assert image.recipe_key(other) != image.recipe_key()


def test_one_image_per_suite_trixie_by_default():
    """A Pi flashed today runs trixie; bookworm is cached beside it under its own key."""
    assert image.DEFAULT_SUITE == "trixie" and set(image.SUITES) == {"trixie", "bookworm"}
    keys = {image.recipe_key(image.Recipe(suite=s)) for s in image.SUITES}
    assert len(keys) == 2 and image.recipe_key() in keys


def test_a_board_recorded_before_suites_existed_loads_as_bookworm(tmp_path):
    import json
    from emuboard import board as boards
    state = {"name": "edgekit-board1", "index": 1, "offline": False, "user": "pi",
             "host_ip": "10.213.1.1", "board_ip": "10.213.1.2", "netns": "edgekit-b1",
             "state_dir": str(tmp_path / "boards/edgekit-board1"), "base": "/x", "cpu": "cortex-a72"}
    (tmp_path / "boards/edgekit-board1").mkdir(parents=True)
    (tmp_path / "boards/edgekit-board1/state.json").write_text(json.dumps(state))
    assert [b.suite for b in boards.load_boards(tmp_path)] == ["bookworm"]


def test_subnets_are_private_and_distinct():
    a, b = network.Net(1), network.Net(2)
    assert a.subnet != b.subnet and a.board_ip == "10.213.1.2" and a.host_ip == "10.213.1.1"
    assert set(a.index_hosts().values()) == {"pypi.org", "files.pythonhosted.org"}
    assert len(a.host_if) <= 15 and len(network.Net(249).host_if) <= 15  # Linux IFNAMSIZ


@pytest.mark.timeout(60)
def test_without_root_a_clear_one_line_error(tmp_path):
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        pytest.skip("needs root and setpriv to run the tool as an unprivileged user")
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path), HOME=str(tmp_path))
    tmp_path.chmod(0o777)
    proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "emuboard", "start"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "board: error: the emulated board needs root (network namespaces, mounts, chroot); "
        "run `sudo make board`"]


@pytest.mark.parametrize("argv, says", [
    ([], "the following arguments are required: command"),
    (["start", "--boards", "0"], "--boards must be between 1 and 16"),
    (["start", "--boards", "two"], "argument --boards: invalid int value: 'two'"),
    (["reboot"], "argument command: invalid choice: 'reboot'"),
    (["start", "--suite", "buster"], "argument --suite: invalid choice: 'buster'"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, says, tmp_path):
    env = dict(os.environ, EDGEKIT_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "emuboard", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("board: error: ") and says in lines[0], lines

