"""The board's root filesystem: Debian arm64 (the base of Raspberry Pi OS), one per suite, built once.

Two suites, because two Raspberry Pi OS generations are in the field: trixie (Debian 13, what a
Pi flashed since late 2025 runs: Python 3.13, NumPy 2.2, glibc 2.41) and bookworm (Debian 12:
Python 3.11, NumPy 1.24, glibc 2.36).

Building takes minutes (the second debootstrap stage runs under emulation), so the result is
cached as a tarball under ~/.cache/edgekit/board/, named by a hash of everything that goes into
it (the recipe below, the configure script, the host's extra CA certificates). Boards never
write to the extracted base: each one mounts it read-only as the lower layer of an overlay.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BoardError
from .prereqs import debian_mirror

EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")  # TLS interception CAs pip needs


# suite -> what a board of that suite stands for (shown by `status` and `--help`)
SUITES = {"trixie": "Debian 13: Raspberry Pi OS since late 2025 (Python 3.13, NumPy 2.2)",
          "bookworm": "Debian 12: Raspberry Pi OS 2023-2025 (Python 3.11, NumPy 1.24)"}
DEFAULT_SUITE = "trixie"  # what a Pi flashed today runs


@dataclass(frozen=True)
class Recipe:
    suite: str = DEFAULT_SUITE
    arch: str = "arm64"
    variant: str = "minbase"
    # python3-venv brings ensurepip's wheels, so deploy can make its venv; tini reaps orphans
    # as PID 1 of the board's PID namespace.
    packages: tuple[str, ...] = ("python3", "python3-venv", "python3-numpy", "openssh-server",
                                 "ca-certificates", "tini", "procps")
    user: str = "pi"
    uid: int = 1000


# Runs inside the new rootfs (under emulation) once, after debootstrap's second stage.
CONFIGURE = """set -e
useradd -m -s /bin/bash -u {uid} {user}
usermod -p '*' {user}          # no password, but not locked: sshd (UsePAM no) allows keys
rm -f /etc/ssh/ssh_host_*      # every board gets its own host key at start
update-ca-certificates >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
"""

SSHD_CONFIG = """# edgekit emulated board: key-only logins, one ed25519 host key made per board.
HostKey /etc/ssh/ssh_host_ed25519_key
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
PrintMotd no
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgekit" / "board"


def recipe_key(recipe: Recipe = Recipe()) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(asdict(recipe), sort_keys=True).encode())
    h.update(CONFIGURE.encode() + SSHD_CONFIG.encode())
    for cert in sorted(EXTRA_CA_DIR.glob("*.crt")):
        h.update(cert.name.encode() + cert.read_bytes())
    return h.hexdigest()[:12]


STEP_TIMEOUT_S = 3600  # the second stage: ~6 min on 2 cores, 20+ min when they are shared; catches hangs only


def _run(cmd: list[str], logfile: Path, what: str) -> None:
    with logfile.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BoardError(f"{what} took over {STEP_TIMEOUT_S} s (log: {logfile})") from None
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise BoardError(f"{what} failed (exit {proc.returncode}): {tail[0]} (log: {logfile})")


def _unmount_below(path: Path) -> None:
    """A build killed half-way can leave debootstrap's /proc mounted inside its tree."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    targets = [m.split()[1] for m in mounts if m.split()[1].startswith(str(path) + "/")]
    for target in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def build(recipe: Recipe, dest: Path, logfile: Path, log=print) -> None:
    """debootstrap (download+unpack on the host, second stage under qemu), then configure."""
    _unmount_below(dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log(f"board: [1/3] debootstrap {recipe.suite} {recipe.arch}: download and unpack")
    _run(["debootstrap", f"--arch={recipe.arch}", "--foreign", f"--variant={recipe.variant}",
          "--include=" + ",".join(recipe.packages), recipe.suite, str(dest), debian_mirror()],
         logfile, "debootstrap (first stage)")
    ca_dest = dest / EXTRA_CA_DIR.relative_to("/")
    ca_dest.mkdir(parents=True, exist_ok=True)
    for cert in EXTRA_CA_DIR.glob("*.crt"):
        shutil.copy2(cert, ca_dest / cert.name)
    log(f"board: [2/3] debootstrap second stage under emulation (a few minutes; "
        f"{time.monotonic() - t0:.0f} s so far)")
    _run(["unshare", "--mount", "--propagation", "private", "chroot", str(dest),
          "/debootstrap/debootstrap", "--second-stage"], logfile, "debootstrap (second stage)")
    log(f"board: [3/3] configure ({time.monotonic() - t0:.0f} s so far)")
    (dest / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (dest / "etc/ssh/sshd_config.d/edgekit.conf").write_text(SSHD_CONFIG)
    (dest / "etc/resolv.conf").write_text("# no DNS on the emulated board\n")
    script = CONFIGURE.format(user=recipe.user, uid=recipe.uid)
    _run(["unshare", "--mount", "--propagation", "private", "chroot", str(dest),
          "/bin/sh", "-c", script], logfile, "configure")
    marker = dest / "etc/edgekit"
    marker.mkdir(exist_ok=True)
    (marker / "board.json").write_text(json.dumps(
        {"emulated": "qemu-user", "recipe": asdict(recipe), "key": recipe_key(recipe)},
        indent=1) + "\n")
    _unmount_below(dest)


def pack(src: Path, tarball: Path) -> None:
    tmp = tarball.with_suffix(".tmp")
    cmd = (f"tar --numeric-owner --xattrs -C {_q(src)} -cf - . | zstd -q -T0 -3 -o {_q(tmp)} -f")
    if subprocess.run(["bash", "-o", "pipefail", "-c", cmd]).returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BoardError(f"cannot write {tarball}")
    tmp.rename(tarball)


def unpack(tarball: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = f"zstd -q -dc {_q(tarball)} | tar --numeric-owner --xattrs -xpf - -C {_q(tmp)}"
    if subprocess.run(["bash", "-o", "pipefail", "-c", cmd]).returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BoardError(f"cannot extract {tarball} (delete it to rebuild)")
    tmp.rename(dest)


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def ensure_base(recipe: Recipe = Recipe(), log=print) -> Path:
    """The extracted read-only base for this recipe: reuse, else extract the tarball, else build."""
    key = recipe_key(recipe)
    root = cache_dir()
    base, tarball = root / f"rootfs-{key}", root / f"rootfs-{key}.tar.zst"
    if base.is_dir():
        return base
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".lock-{key}").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make board` waits for the first build
        if base.is_dir():
            return base
        return _build_or_unpack(recipe, key, root, base, tarball, log)


def _build_or_unpack(recipe: Recipe, key: str, root: Path, base: Path, tarball: Path,
                     log) -> Path:
    if not tarball.exists():
        t0 = time.monotonic()
        log(f"board: building the aarch64 root filesystem (once; cached as {tarball})")
        work = root / f"build-{key}"
        build(recipe, work, root / f"build-{key}.log", log)
        pack(work, tarball)
        work.rename(base)
        log(f"board: built in {time.monotonic() - t0:.0f} s")
        return base
    t0 = time.monotonic()
    unpack(tarball, base)
    log(f"board: extracted the cached root filesystem in {time.monotonic() - t0:.1f} s")
    return base
