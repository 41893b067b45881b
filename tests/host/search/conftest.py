"""A real, throwaway PostgreSQL server for the search's tests: Debian's postgresql package (installed
here if missing, as CI starts from a clean machine), a cluster initialised in a temporary folder,
listening only on a Unix socket there, stopped and removed at the end of the session. PostgreSQL
refuses to run as root, so as root the server runs as the package's `postgres` user."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _install() -> None:
    if os.geteuid() != 0:
        pytest.fail("PostgreSQL is not installed: `sudo apt-get install -y postgresql` (the tests need a real server)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """postgresql://edgekit@/edgekit?host=<socket dir>: a fresh database, trust auth on a private socket."""
    bindir = _bindir()
    if bindir is None:
        _install()
        bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(root, 0o700)
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> None:
        proc = subprocess.run(as_user + list(args), capture_output=True, text=True, timeout=120)
        if proc.returncode:
            tail = log.read_text()[-2000:] if log.is_file() else ""
            pytest.fail(f"{' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]} {tail}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "edgekit", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
        f"-k {root} -c listen_addresses='' -c fsync=off -c max_connections=60", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(root), "-U", "edgekit", "edgekit")
        yield f"postgresql://edgekit@/edgekit?host={root}"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
