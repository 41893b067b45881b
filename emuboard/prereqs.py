"""Make this (Debian, root) machine able to run aarch64 programs: packages and binfmt_misc.

On a bookworm host two packages come from bookworm-backports (same mirror, same archive key):
qemu-user, because bookworm's qemu-user 7.2 segfaults inside ai-edge-litert's Interpreter (qemu 10
runs it), and debootstrap 1.0.141, trixie's own, because bookworm's 1.0.128 predates trixie's
release (it only knows the name as an alias of sid). A trixie (or newer) host has both in its own
suite. Everything here is idempotent: a second call installs nothing and changes nothing.
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
BACKPORTED = ["qemu-user-static", "qemu-user", "qemu-user-binfmt", "debootstrap"]  # on bookworm
MIN_QEMU_MAJOR = 10
MIN_DEBOOTSTRAP = (1, 0, 134)  # the first with trixie as a released suite
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")
BACKPORTS_FILE = Path("/etc/apt/sources.list.d/edgekit-backports.sources")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")  # qemu >= 9 ships systemd-binfmt files
QEMU = "/usr/bin/qemu-aarch64-static"


def require_root() -> None:
    if os.geteuid() != 0:
        raise BoardError("the emulated board needs root (network namespaces, mounts, chroot); "
                         "run `sudo make board`")


def host_codename() -> str:
    """This machine's Debian suite (bookworm, trixie...): decides where qemu/debootstrap come from."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    m = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.M)
    return m.group(1) if m else ""


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (so we add no new host); it serves
    every suite, so boards of any suite are built from it."""
    suite = host_codename() or "bookworm"
    texts = [p.read_text(errors="replace") for p in Path("/etc/apt").glob("sources.list.d/*.sources")]
    for text in texts:
        for stanza in text.split("\n\n"):
            if re.search(rf"^Suites:.*\b{suite}\b", stanza, re.M) and "debian-security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1).rstrip("/")
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        m = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{suite}\s", legacy.read_text(), re.M)
        if m:
            return m.group(1).rstrip("/")
    raise BoardError(f"cannot find this machine's Debian {suite} mirror in /etc/apt")


def qemu_major() -> int:
    if not Path(QEMU).exists():
        return 0
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.", out)
    return int(m.group(1)) if m else 0


def debootstrap_version() -> tuple[int, ...]:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"],
                          capture_output=True, text=True)
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", proc.stdout.strip())
    return tuple(int(x) for x in m.groups()) if m else ()


def _apt(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise BoardError(f"apt-get {' '.join(args[:2])} failed: {tail[0]}")


def _ready() -> bool:
    return (all(_installed(p) for p in APT_PACKAGES) and qemu_major() >= MIN_QEMU_MAJOR
            and debootstrap_version() >= MIN_DEBOOTSTRAP)


def install_packages(suite: str, log=print) -> None:
    """Install qemu-user, binfmt-support, debootstrap... only what is missing or too old."""
    if not _ready():
        _install(log)
    if not (DEBOOTSTRAP_SCRIPTS / suite).exists():
        raise BoardError(f"debootstrap {'.'.join(map(str, debootstrap_version()))} does not "
                         f"know the suite {suite!r}")


def _install(log) -> None:
    if not shutil.which("apt-get"):
        raise BoardError("apt-get not found: the emulated board needs a Debian/Ubuntu host")
    if host_codename() != "bookworm":  # trixie and later have qemu 10 and debootstrap 1.0.141
        log("board: installing " + " ".join(APT_PACKAGES))
        _apt("update", "-qq")
        _apt("install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES)
        _check_versions()
        return
    if not BACKPORTS_FILE.exists():
        BACKPORTS_FILE.write_text(
            "# Added by edgekit's emulated-board tool (emuboard): qemu-user 10 for aarch64.\n"
            "Types: deb\n"
            f"URIs: {debian_mirror()}\n"
            "Suites: bookworm-backports\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    log("board: installing " + " ".join(APT_PACKAGES) +
        " (qemu-user 10 and debootstrap 1.0.141 from bookworm-backports)")
    _apt("update", "-qq")
    _apt("install", "-y", "-qq", "--no-install-recommends",
         *[f"{p}/bookworm-backports" if p in BACKPORTED else p for p in APT_PACKAGES])
    _check_versions()


def _check_versions() -> None:
    if qemu_major() < MIN_QEMU_MAJOR:
        raise BoardError(f"qemu-user >= {MIN_QEMU_MAJOR} is needed (ai-edge-litert crashes "
                         f"under older versions); found {qemu_major() or 'none'}")
    if debootstrap_version() < MIN_DEBOOTSTRAP:
        raise BoardError(f"debootstrap >= {'.'.join(map(str, MIN_DEBOOTSTRAP))} is needed (it "
                         f"knows trixie); found {'.'.join(map(str, debootstrap_version())) or 'none'}")


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


def ensure_host_ready(suite: str, log=print) -> None:
    require_root()
    install_packages(suite, log)
    enable_binfmt()
