"""Shared bits of the reliability suite: the fuzz budget, the counts and reports/reliability.md.

Counts are gathered while the tests run (`count(area, key)`) and written at the end of the
session when the run is a `make fuzz` (FUZZ_CASES set) or EDGEKIT_REPORTS names a directory.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUZZ_DEFAULT = 40          # cases per fuzz test in `make test`; `make fuzz` passes FUZZ_CASES=500

COUNTS: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
OUTCOMES: list[tuple[str, str, float]] = []     # (test id, outcome, seconds)
MARKER = "EDGEKIT_PWNED"                         # hostile names try to create a file with this name


def fuzz_cases() -> int:
    return max(1, int(os.environ.get("FUZZ_CASES") or FUZZ_DEFAULT))


def count(area: str, key: str, n: int = 1) -> None:
    COUNTS[area][key] += n


def report_path() -> Path | None:
    """reports/reliability.md (or $EDGEKIT_REPORTS/reliability.md); None when no report is wanted."""
    if os.environ.get("EDGEKIT_REPORTS"):
        return Path(os.environ["EDGEKIT_REPORTS"]) / "reliability.md"
    if os.environ.get("FUZZ_CASES"):
        return REPO / "reports" / "reliability.md"
    return None


def render_report() -> str:
    lines = ["# Reliability suite", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by `make fuzz` "
             f"(FUZZ_CASES={fuzz_cases()}).", ""]
    for area in sorted(COUNTS):
        lines += [f"## {area}", "", "| count | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in COUNTS[area].items()]
        lines.append("")
    if OUTCOMES:
        by = defaultdict(int)
        for _, outcome, _ in OUTCOMES:
            by[outcome] += 1
        lines += ["## Cases", "", ", ".join(f"{v} {k}" for k, v in sorted(by.items()))
                  + " (xfailed = a known bug, listed with its reason)", "",
                  "| case | outcome | seconds |", "|---|---|---|"]
        lines += [f"| `{nodeid}` | {outcome} | {secs:.1f} |" for nodeid, outcome, secs in OUTCOMES]
        lines.append("")
    return "\n".join(lines)


def write_report() -> Path | None:
    path = report_path()
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(render_report())
    os.replace(tmp, path)
    return path


def ensure_faketime() -> str | None:
    """Path of libfaketime (installed with apt when missing and we are root), else None."""
    for lib in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"):
        if os.path.exists(lib):
            return lib
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "faketime"], env=env, capture_output=True, timeout=300)
        return ensure_faketime() if shutil.which("faketime") else None
    return None


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every stored result under `directory` with its bytes: to prove earlier results are untouched."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and "rejected" not in p.relative_to(directory).parts}


def rejected(results: Path) -> list[Path]:
    """What was kept aside as rejected (never a result)."""
    return sorted((results / "rejected").rglob("*.json")) if (results / "rejected").exists() else []


def python_env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CI="1")
    env.update(extra)
    return env


def run_py(*args: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=python_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def start_sshd_like(board, base: Path, *, setenv: str = "", host_key: Path | None = None,
                    board_home: Path | None = None):
    """Another real sshd like `board` (same client key, same board state unless `board_home`),
    optionally with another host key or extra environment (e.g. a wrong clock via libfaketime)."""
    from emuboard import loopback as sshd_tool
    base.mkdir(parents=True, exist_ok=True)
    port = sshd_tool.free_port()
    lines = []
    for line in (board.dir / "sshd_config").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "Port":
            line = f"Port {port}"
        elif key == "PidFile":
            line = f"PidFile {base}/sshd.pid"
        elif key == "HostKey" and host_key is not None:
            line = f"HostKey {host_key}"
        elif key == "SetEnv":
            home = board_home or board.board_home
            line = f'SetEnv "EDGEKIT_HOME={home}" PIP_NO_CACHE_DIR=1 {setenv}'.rstrip()
        lines.append(line)
    (base / "sshd_config").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sshd_tool.SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
                            stderr=open(base / "sshd.log", "a"))
    sshd_tool.wait_listening(proc, port, base / "sshd.log")
    key_pub = (host_key or Path(board.dir / "host_ed25519")).with_suffix(".pub").read_text().split()
    return sshd_tool.Sshd(base, port, f"[127.0.0.1]:{port} {key_pub[0]} {key_pub[1]}", board.client_key,
                          board_home or board.board_home, proc)


def alias(client_home: Path, name: str, port: int, key: Path, known_line: str | None) -> str:
    """An ssh-config alias for a board, and (optionally) the host key line that pins it."""
    edgekit = client_home / ".edgekit"
    if known_line:
        with open(edgekit / "known_hosts", "a") as f:
            f.write(known_line + "\n")
    with open(edgekit / "ssh_config", "a") as f:
        f.write(f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {key}\n")
    return name


def failure_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if "FAILED" in l or l.startswith("deploy: error:")]


def deploy_cli(*args, timeout: float = 300) -> tuple[int, str, str]:
    """`python -m deploy ARGS` as a separate process (a watcher thread in the test process then
    never competes with the deploy for the GIL); environment as the test set it."""
    proc = subprocess.run([sys.executable, "-m", "deploy", *map(str, args)], cwd=REPO, env=python_env(),
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_untouched(before: dict[str, bytes], results: Path) -> list[str]:
    """Every earlier result is still there, byte for byte; returns the names of new ones."""
    now = snapshot(results)
    changed = [k for k, v in before.items() if now.get(k) != v]
    assert not changed, f"earlier results changed or lost: {changed}"
    return sorted(set(now) - set(before))


def uploading(blobs: Path, old: set, more_than: int = 1 << 20) -> bool:
    """True once a new upload (`*.part` not in `old`) in the board's blob store passes `more_than` bytes."""
    for part in blobs.glob("*.part"):
        try:
            if part.name not in old and part.stat().st_size > more_than:
                return True
        except FileNotFoundError:       # renamed into place between glob and stat
            pass
    return False


def wait_for_measuring_child(agent_pid: int, timeout: float = 60.0) -> bool:
    """Readiness for "kill it mid-benchmark": the agent has started its per-model child (the
    process that loads and times the model), instead of a fixed sleep that may be too short."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if any("child_main" in " ".join(c.cmdline()) for c in psutil.Process(agent_pid).children()):
                return True
        except psutil.Error:
            return False
        time.sleep(0.01)
    return False
