"""Make this (Debian, root) machine able to run aarch64 programs: packages and binfmt_misc.

qemu-user comes from bookworm-backports because bookworm's qemu-user 7.2 segfaults inside
ai-edge-litert's Interpreter; qemu 10 runs it. Everything here is idempotent: a second call
installs nothing and changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import BoardError

APT_PACKAGES = ["qemu-user-static", "qemu-user", "qemu-user-binfmt", "binfmt-support",
                "debootstrap", "iproute2", "openssh-client", "zstd"]
BACKPORTED = ["qemu-user-static", "qemu-user", "qemu-user-binfmt"]  # from bookworm-backports
MIN_QEMU_MAJOR = 10
BACKPORTS_FILE = Path("/etc/apt/sources.list.d/edgekit-backports.sources")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # qemu >= 9 ships systemd-binfmt files
QEMU = "/usr/bin/qemu-aarch64-static"


def require_root() -> None:
    if os.geteuid() != 0:
        raise BoardError("the emulated board needs root (network namespaces, mounts, chroot); "
                         "run `sudo make board`")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (so we add no new host)."""
    texts = [p.read_text(errors="replace") for p in Path("/etc/apt").glob("sources.list.d/*.sources")]
    for text in texts:
        for stanza in text.split("\n\n"):
            if re.search(r"^Suites:.*\bbookworm\b", stanza, re.M) and "debian-security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1).rstrip("/")
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", legacy.read_text(), re.M)
        if m:
            return m.group(1).rstrip("/")
    raise BoardError("cannot find this machine's Debian bookworm mirror in /etc/apt")


def qemu_major() -> int:
    if not Path(QEMU).exists():
        return 0
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.", out)
    return int(m.group(1)) if m else 0


def _apt(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise BoardError(f"apt-get {' '.join(args[:2])} failed: {tail[0]}")


def install_packages(log=print) -> None:
    """Install qemu-user (backports), binfmt-support, debootstrap... only what is missing."""
    missing = [p for p in APT_PACKAGES if not _installed(p)]
    if not missing and qemu_major() >= MIN_QEMU_MAJOR:
        return
    if not shutil.which("apt-get"):
        raise BoardError("apt-get not found: the emulated board needs a Debian/Ubuntu host")
    if not BACKPORTS_FILE.exists():
        BACKPORTS_FILE.write_text(
            "# Added by edgekit's emulated-board tool (emuboard): qemu-user 10 for aarch64.\n"
            "Types: deb\n"
            f"URIs: {debian_mirror()}\n"
            "Suites: bookworm-backports\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    log("board: installing " + " ".join(APT_PACKAGES) + " (qemu-user from bookworm-backports)")
    _apt("update", "-qq")
    _apt("install", "-y", "-qq", "--no-install-recommends",
         *[f"{p}/bookworm-backports" if p in BACKPORTED else p for p in APT_PACKAGES])
    if qemu_major() < MIN_QEMU_MAJOR:
        raise BoardError(f"qemu-user >= {MIN_QEMU_MAJOR} is needed (ai-edge-litert crashes "
                         f"under older versions); found {qemu_major() or 'none'}")


def _installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "install ok installed"


def enable_binfmt() -> None:
    """Register aarch64 ELF binaries with qemu (flag F: works inside a chroot without copying)."""
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                       capture_output=True)
    entry = BINFMT_DIR / "qemu-aarch64"
    if entry.exists():
        if entry.read_text().startswith("enabled"):
            return
        entry.write_text("1")
        return
    if not BINFMT_CONF.exists():
        raise BoardError(f"{BINFMT_CONF} missing: is qemu-user-binfmt >= 9 installed?")
    line = next(line for line in BINFMT_CONF.read_text().splitlines()
                if line.startswith(":"))
    try:
        (BINFMT_DIR / "register").write_text(line)
    except OSError as exc:
        raise BoardError(f"cannot register aarch64 with binfmt_misc: {exc}") from None


def ensure_host_ready(log=print) -> None:
    require_root()
    install_packages(log)
    enable_binfmt()
