"""The emulated board itself, over real SSH: an aarch64 Debian with its own identity and network."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from shlex import quote as shlex_quote

import pytest

from emuboard import board as boards
from tests.e2e.conftest import (BUILD_TIMEOUT_S, REPO, SUITE_FACTS, _start, _teardown,
                                private_home, ssh)

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S)


def test_ssh_login_runs_aarch64_userland(board, board_home):
    out = ssh(board, board_home, "uname -m; hostname; id -un").stdout.split()
    assert out == ["aarch64", board.name, "pi"]


@pytest.mark.parametrize("which", ["board", "bookworm_board"])
def test_board_os_python_and_numpy_are_its_suites(which, request, board_home):
    """trixie: Debian 13, Python 3.13, NumPy 2.2, glibc 2.41; bookworm: 12, 3.11, 1.24, 2.36."""
    board = request.getfixturevalue(which)
    code = ("import json, platform, sys, numpy; print(json.dumps({'machine': platform.machine(), "
            "'py': list(sys.version_info[:2]), 'numpy': numpy.__version__, "
            "'glibc': platform.libc_ver()[1], 'sum': int(numpy.arange(10).sum())}))")
    out = json.loads(ssh(board, board_home, f"python3 -c {shlex_quote(code)}").stdout)
    facts = SUITE_FACTS[board.suite]
    assert out["machine"] == "aarch64"
    assert out["py"] == facts["py"]
    assert out["numpy"].split(".")[0] == facts["numpy_major"]
    assert out["glibc"] == facts["glibc"]
    assert out["sum"] == 45
    version = ssh(board, board_home, ". /etc/os-release; echo $VERSION_ID $VERSION_CODENAME").stdout
    assert version.split() == [facts["os_version"], board.suite]
    assert ssh(board, board_home, "python3 -c 'import ensurepip, venv'").returncode == 0


def test_proc_and_sys_are_mounted_for_cpu_detection(board, board_home):
    """XNNPACK reads the CPU's features and count from /proc and /sys; and the agent reads the
    kernel's real arch from /proc/sys/kernel/arch to know it runs under emulation."""
    out = ssh(board, board_home, "cat /sys/devices/system/cpu/online; nproc; "
                                 "cat /proc/sys/kernel/arch; echo $EDGEKIT_EMULATED").stdout.split()
    assert out[0].startswith("0")
    assert int(out[1]) >= 1
    assert out[2] == platform.machine()  # the host's kernel, seen through /proc
    assert out[3] == "1"


def test_cpu_is_a_raspberry_pi_4s_core(board, board_home):
    """qemu emulates a Cortex-A72 (ARMv8.0 + crc32): no dotprod, no SVE, as on a Pi 4."""
    features = ssh(board, board_home, "grep -m1 Features /proc/cpuinfo").stdout.split()[2:]
    assert "asimd" in features and "crc32" in features
    assert "asimddp" not in features and "sve" not in features


def test_agent_runs_on_the_board_and_knows_it_is_emulated(board, board_home, tmp_path):
    """agent.pyz on the board's own python3 (no runtime venv needed for `info`)."""
    if not (REPO / "device/build.py").exists():
        pytest.skip("device/build.py not present yet")
    agent = tmp_path / "agent.pyz"
    subprocess.run([sys.executable, "-m", "device.build", str(agent)], cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    with agent.open("rb") as f:
        subprocess.run(board.ssh_argv(board_home / "known_hosts") + ["cat > /tmp/agent.pyz"],
                       stdin=f, check=True, timeout=60)
    out = ssh(board, board_home, "env -u EDGEKIT_EMULATED python3 /tmp/agent.pyz info --json -")
    info = json.loads(out.stdout)
    info = info.get("device", info)
    assert info["arch"] == "aarch64" and info["hostname"] == board.name
    assert info["emulated"] is True  # detected by the agent itself, not only told by SetEnv
    facts = SUITE_FACTS[board.suite]  # and it says which OS generation, Python and NumPy
    assert (info["os_id"], info["os_version"], info["os_codename"]) == \
        ("debian", facts["os_version"], board.suite)
    assert info["python"].startswith("%d.%d." % tuple(facts["py"]))
    assert info["numpy"].split(".")[0] == facts["numpy_major"]
    assert info["glibc"] == "glibc-" + facts["glibc"]


def test_unknown_host_key_is_refused(board, board_home, tmp_path):
    """The board's key is pinned in $EDGEKIT_HOME/known_hosts; without it ssh refuses."""
    argv = board.ssh_argv(tmp_path / "empty_known_hosts") + ["true"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Host key verification failed" in proc.stderr


def test_ssh_config_alias_works_for_plain_ssh(board, board_home):
    """What deploy reads: a Host entry and a pinned key under EDGEKIT_HOME."""
    config = board_home / "ssh_config"
    assert f"Host {board.name}\n" in config.read_text()
    proc = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", board.name, "uname -m"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "aarch64", proc.stderr


def test_online_board_reaches_the_package_index_only(board, board_home):
    code = ("import socket\n"
            "for host in ('pypi.org', 'files.pythonhosted.org'):\n"
            "    socket.create_connection((host, 443), timeout=10).close(); print(host, 'ok')\n"
            "try:\n"
            "    socket.create_connection(('example.com', 443), timeout=5)\n"
            "    print('example.com reachable')\n"
            "except OSError:\n"
            "    print('example.com unreachable')\n")
    out = ssh(board, board_home, f"python3 -c {shlex_quote(code)}").stdout.splitlines()
    assert out == ["pypi.org ok", "files.pythonhosted.org ok", "example.com unreachable"]
    # Real HTTPS with certificate checks (the board trusts the host's CA certificates, as pip
    # needs): the index's page for a package.
    code = ("import urllib.request\n"
            "page = urllib.request.urlopen('https://pypi.org/simple/six/', timeout=60).read()\n"
            "print(b'six-1.17.0' in page)\n")
    out = ssh(board, board_home, f"python3 -c {shlex_quote(code)}", timeout=180).stdout
    assert out.strip() == "True"


def test_offline_board_has_no_route_to_the_index(offline_board, board_home):
    code = ("import socket\n"
            "try:\n"
            "    socket.create_connection(('pypi.org', 443), timeout=5); print('online')\n"
            "except OSError:\n"
            "    print('offline')\n")
    out = ssh(offline_board, board_home, f"python3 -c {shlex_quote(code)}").stdout.strip()
    assert out == "offline"
    routes = ssh(offline_board, board_home, "cat /proc/net/route").stdout
    destinations = [line.split()[1] for line in routes.splitlines()[1:] if line.strip()]
    assert destinations and "00000000" not in destinations  # only its /24, no default route


def test_fleet_boards_are_separate_and_stop_leaves_nothing():
    """Two more boards share the read-only base through their own overlays, a board of the
    other suite runs beside them; `status` lists all three, `stop` removes every trace of all:
    processes, namespaces, mounts, ssh entries."""
    with private_home() as home:
        _fleet_checks(home)


def _fleet_checks(home: Path) -> None:
    fleet = []
    try:
        fleet = _start(home, offline=False, count=2)
        a, b = fleet
        assert a.name != b.name and a.board_ip != b.board_ip
        again = _start(home, offline=False, count=2)  # `make board` twice: the same two boards
        assert [x.name for x in again] == [a.name, b.name]
        ssh(a, home, "echo from-a > /home/pi/mark")
        assert ssh(b, home, "cat /home/pi/mark", check=False).returncode != 0
        assert ssh(b, home, "hostname").stdout.strip() == b.name
        keys = {(Path(x.root) / "etc/ssh/ssh_host_ed25519_key.pub").read_text() for x in fleet}
        assert len(keys) == 2
        assert not (Path(a.base) / "home/pi/mark").exists()  # the shared base is untouched
        fleet += _start(home, offline=False, suite="bookworm")
        assert fleet[2].base != a.base and fleet[2].name not in (a.name, b.name)
        pids = [int((x.dir / f"{w}.pid").read_text()) for x in fleet for w in ("unshare", "init")]
        env = dict(os.environ, EDGEKIT_HOME=str(home))
        status = subprocess.run([sys.executable, "-m", "emuboard", "status"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        rows = sorted(tuple(line.split("\t")[:2]) + (line.split("\t")[-1],)
                      for line in status.stdout.splitlines())
        assert rows == sorted([(a.name, "trixie", "up"), (b.name, "trixie", "up"),
                               (fleet[2].name, "bookworm", "up")]), status.stdout
        stop = subprocess.run([sys.executable, "-m", "emuboard", "stop"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0 and stop.stdout.count(" stopped") == 3, stop.stdout + stop.stderr
    finally:
        _teardown(home, fleet)
    assert boards.load_boards(home) == []
    mounts = Path("/proc/mounts").read_text()
    for x in fleet:
        assert str(x.root) not in mounts
        assert not Path("/run/netns", x.netns).exists()
        assert f"Host {x.name}\n" not in (home / "ssh_config").read_text()
        assert x.board_ip not in (home / "known_hosts").read_text()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


