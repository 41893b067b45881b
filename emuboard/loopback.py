"""A loopback board: a real OpenSSH server on 127.0.0.1, its own host key, one authorized key.

The lightweight stand-in beside the emulated board: the same machine and CPU, no namespace or
emulation, started in well under a second (the deploy tests, `make perf`'s deploy figures).

Board-side state goes to `board_home` (sshd's SetEnv EDGEKIT_HOME), never to the real ~/.edgekit.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Sshd:
    dir: Path
    port: int
    host_key_line: str        # "[127.0.0.1]:port ssh-ed25519 AAAA..." for a known_hosts file
    client_key: Path
    board_home: Path
    proc: subprocess.Popen | None = None

    @property
    def spec(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill_sessions(self) -> None:
        """Drop every open connection (the listener stays): an interrupted deploy, for real."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        for pid in out.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass


def unavailable_reason() -> str | None:
    if not os.path.exists(SSHD):
        return f"{SSHD} not installed (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "sshd test server needs root"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen not installed"
    return None


def wait_listening(proc: subprocess.Popen, port: int, log: Path, secs: float = 10) -> None:
    """Until sshd accepts connections on 127.0.0.1:port (or fail with the tail of its log)."""
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)


def start(base: Path, board_home: Path | None = None) -> Sshd:
    """Start sshd in `base` with a new host key; the board's edgekit home is `board_home`."""
    base.mkdir(parents=True, exist_ok=True)
    host_key = base / "host_ed25519"
    keygen(host_key)
    client_key = base / "client_ed25519"
    if not client_key.exists():
        keygen(client_key)
    (base / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    board_home = board_home or base / "board"
    board_home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = base / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {base}/sshd.pid
AuthorizedKeysFile {base}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
SetEnv EDGEKIT_HOME={board_home} PIP_NO_CACHE_DIR=1
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)   # privilege-separation dir sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(base / "sshd.log", "a"))
    wait_listening(proc, port, base / "sshd.log")
    pub = host_key.with_suffix(".pub").read_text().split()
    line = f"[127.0.0.1]:{port} {pub[0]} {pub[1]}"
    return Sshd(base, port, line, client_key, board_home, proc)
