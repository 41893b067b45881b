"""What the board is and whether a deploy can work there, found over one command, before any change.

Whether the board reaches a package index is asked later, and only when a runtime is installed.
Refuses clearly on what cannot work: no python3, Python too old, an unsupported arch (armv6),
too little free disk.
"""
from __future__ import annotations

from dataclasses import dataclass

from deploy import settings
from deploy.errors import DeployError
from deploy.targets.base import BOARD_HOME_SH, Target

# One shell round trip; every line is key=value. python3 may be missing, so probe it separately.
PROBE = r"""
home=""" + BOARD_HOME_SH + r"""
echo "home=$home"
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
[ -r /etc/os-release ] && . /etc/os-release && echo "os=$PRETTY_NAME"
[ -r /proc/device-tree/model ] && echo "model=$(tr -d '\0' < /proc/device-tree/model)"
awk '/MemTotal/ {print "ram_mb=" int($2/1024)}' /proc/meminfo 2>/dev/null
d="$home"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "free_mb=$(df -Pk "$d" | awk 'NR==2 {print int($4/1024)}')"
if command -v python3 >/dev/null 2>&1; then
  python3 - <<'PY'
import platform, sys
print("python=%d.%d.%d" % sys.version_info[:3])
print("python_path=" + sys.executable)
print("glibc=" + "-".join(platform.libc_ver()))
try:
    import numpy
    print("numpy=" + numpy.__version__)
except Exception:
    pass
try:
    import ensurepip, venv
    print("venv=yes")
except Exception:
    print("venv=no")
PY
fi
[ -x "$home/venv/bin/python" ] && echo "runtime_python=$("$home/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
[ -r "$home/venv/edgekit-runtime" ] && echo "runtime=$(cat "$home/venv/edgekit-runtime")"
true
"""


@dataclass
class Board:
    """Facts about one board; everything later decisions need."""
    home: str
    arch: str
    python: tuple[int, int, int]
    glibc: tuple[int, int] | None
    free_mb: int
    ram_mb: int
    model: str = ""
    os: str = ""
    numpy: str = ""
    has_venv: bool = True           # python3 -m venv works (Debian splits it into python3-venv)
    online: bool | None = None      # reaches PyPI; only asked when a runtime is installed
    installed_runtime: str = ""     # "name==version" recorded by the last runtime install

    @property
    def py_tag(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"


def probe(target: Target) -> Board:
    res = target.run(PROBE, timeout=60)
    if not res.ok:
        raise DeployError(f"{target.name}: preflight failed: {res.stderr.strip()[:200]}")
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if "python" not in facts:
        raise DeployError(f"{target.name}: no python3 on the board; install it "
                          "(e.g. `sudo apt install python3 python3-venv`)")
    glibc = facts.get("glibc", "")
    glibc_ver = None
    if glibc.startswith("glibc-"):
        glibc_ver = tuple(int(x) for x in glibc.split("-", 1)[1].split(".")[:2])
    return Board(home=facts["home"], arch=facts.get("arch", "?"),
                 python=tuple(int(x) for x in facts["python"].split(".")),
                 glibc=glibc_ver, free_mb=int(facts.get("free_mb") or 0),
                 ram_mb=int(facts.get("ram_mb") or 0), model=facts.get("model", ""),
                 os=facts.get("os", ""), numpy=facts.get("numpy", ""), has_venv=facts.get("venv") == "yes",
                 installed_runtime=facts.get("runtime", "") if facts.get("runtime_python") else "")


def can_reach_index(target: Target) -> bool:
    """Asked only when a runtime must be installed: offline boards then get a wheelhouse."""
    res = target.run("python3 -c 'import socket; socket.create_connection((\"pypi.org\", 443), timeout=3).close()'",
                     timeout=30)
    return res.ok


def check(target: Target, board: Board, *, need_runtime: bool) -> None:
    """Raise for anything that cannot work, before the board is changed."""
    if board.arch not in settings.SUPPORTED_ARCHES:
        raise DeployError(f"{target.name}: unsupported arch {board.arch} (edgekit supports "
                          f"{', '.join(settings.SUPPORTED_ARCHES)}; armv6 boards have no TFLite wheels)")
    if board.python[:2] < settings.MIN_PYTHON:
        raise DeployError(f"{target.name}: Python {board.py_tag} is too old "
                          f"(need >= {'.'.join(map(str, settings.MIN_PYTHON))})")
    if need_runtime and not board.has_venv:
        raise DeployError(f"{target.name}: python3 has no venv module; install it "
                          "(e.g. `sudo apt install python3-venv`)")
    need = settings.MIN_FREE_MB if need_runtime else 20
    if board.free_mb < need:
        raise DeployError(f"{target.name}: only {board.free_mb} MB free under {board.home} "
                          f"(need >= {need} MB)")
