"""Offline boards: the host downloads the board's wheels (its platform and Python) and ships them.

Wheelhouses are cached on the host under <cache>/wheelhouse/<key>/, so a fleet or a re-deploy
downloads nothing twice. When the board's own NumPy is reused, NumPy is left out of the
wheelhouse; pip cannot be told "already installed", so then the dependencies are walked one
wheel at a time (this is also the only way for armv7l, where PyPI has no NumPy wheels).
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from deploy.errors import DeployError
from deploy.settings import cache_dir
from deploy.targets.base import Target


def platform_tags(arch: str, glibc: tuple[int, int] | None) -> list[str]:
    """Every manylinux tag a board with this glibc can install, newest first."""
    major, minor = glibc or (2, 17)
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    tags += [f"manylinux2014_{arch}", f"linux_{arch}"]
    return tags


def _pip_download(requirement: list[str], dest: Path, arch: str, glibc, python, no_deps: bool) -> None:
    py = f"{python[0]}{python[1]}"
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", f"{python[0]}.{python[1]}",
           "--implementation", "cp", "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for tag in platform_tags(arch, glibc):
        cmd += ["--platform", tag]
    if no_deps:
        cmd.append("--no-deps")
    res = subprocess.run(cmd + requirement, capture_output=True, text=True)
    if res.returncode != 0:
        errors = [l for l in res.stderr.splitlines() if l.startswith("ERROR")]
        raise DeployError(f"cannot build a wheelhouse for {arch}/Python {python[0]}.{python[1]}: "
                          f"{(errors or [res.stderr.strip()[-200:]])[0]}")


def _requires(wheel: Path, arch: str, python) -> list[str]:
    """The wheel's dependencies that apply on the board (markers evaluated for it, no extras)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(z.read(meta).decode("utf-8", "replace"), headersonly=True)
    env = {"python_version": f"{python[0]}.{python[1]}", "python_full_version": f"{python[0]}.{python[1]}.0",
           "platform_machine": arch, "sys_platform": "linux", "platform_system": "Linux",
           "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "extra": ""}
    out = []
    for line in headers.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def _walk(requirements: list[str], exclude: set[str], dest: Path, arch: str, glibc, python) -> None:
    queue, seen = list(requirements), set()
    while queue:
        req = Requirement(queue.pop(0))
        name = canonicalize_name(req.name)
        if name in seen or name in exclude:
            continue
        seen.add(name)
        before = set(dest.glob("*.whl"))
        _pip_download([str(req)], dest, arch, glibc, python, no_deps=True)
        for wheel in dest.glob("*.whl"):
            if wheel in before and canonicalize_name(parse_wheel_filename(wheel.name)[0]) != name:
                continue
            if canonicalize_name(parse_wheel_filename(wheel.name)[0]) == name:
                queue += _requires(wheel, arch, python)


def build(requirements: list[str], *, arch: str, glibc: tuple[int, int] | None,
          python: tuple[int, int], board_numpy: str | None = None) -> Path:
    """Return a directory of wheels for the board (cached; built once per key).

    With `board_numpy` (the board's own NumPy is reused) no NumPy wheel is shipped: resolve as if
    that NumPy were pinned, then drop its wheel; if PyPI has no NumPy wheel for the board at all
    (armv7l), walk the dependencies one wheel at a time instead."""
    spec = "\n".join(requirements)
    key = hashlib.sha256(f"{spec}\nboard numpy: {board_numpy}".encode()).hexdigest()[:10]
    glibc_tag = f"glibc{glibc[0]}.{glibc[1]}" if glibc else "glibc"
    out = cache_dir() / "wheelhouse" / f"{arch}-{glibc_tag}-py{python[0]}{python[1]}-{key}"
    if (out / ".complete").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kept = [r for r in requirements if not (board_numpy and canonicalize_name(Requirement(r).name) == "numpy")]
    (tmp / "requirements.txt").write_text("\n".join(kept) + "\n")
    try:
        if board_numpy:
            try:
                _pip_download(kept + [f"numpy=={board_numpy}"], tmp, arch, glibc, python, no_deps=False)
                for wheel in tmp.glob("numpy-*.whl"):
                    wheel.unlink()
            except DeployError:
                _walk(kept, {"numpy"}, tmp, arch, glibc, python)
        else:
            _pip_download(["-r", str(tmp / "requirements.txt")], tmp, arch, glibc, python, no_deps=False)
    except DeployError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def ship(target: Target, local_dir: Path, remote_dir: str) -> int:
    """Copy a directory's files, skipping ones already there with the same size."""
    q = shlex.quote
    res = target.run(f"mkdir -p {q(remote_dir)} && cd {q(remote_dir)} && "
                     "for f in *; do [ -f \"$f\" ] && echo \"$(wc -c < \"$f\") $f\"; done; true", timeout=60)
    have = {}
    for line in res.stdout.splitlines():
        size, _, name = line.strip().partition(" ")
        if size.isdigit():
            have[name] = int(size)
    sent = 0
    for path in sorted(local_dir.iterdir()):
        if not path.is_file() or path.name == ".complete":
            continue
        if have.get(path.name) == path.stat().st_size:
            continue
        target.put(path, f"{remote_dir}/{path.name}.part")
        res = target.run(f"mv {q(remote_dir + '/' + path.name + '.part')} {q(remote_dir + '/' + path.name)}",
                         timeout=60)
        if not res.ok:
            why = (res.stderr.strip().splitlines() or ["no output"])[-1][:300]
            raise DeployError(f"{target.name}: cannot place wheel {path.name} in {remote_dir}: {why}")
        sent += path.stat().st_size
    return sent
