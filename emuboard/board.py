"""Start and stop emulated boards: overlay root, namespace, sshd, and the ssh entries for deploy.

A board is a directory under $EDGEKIT_HOME/boards/<name>/ holding its overlay (upper/work/root),
its client key, a log, state.json and one pid file per process started for it. `stop` reads only
those files, so it can tear down a board left behind by a crashed run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import image, network, prereqs, sshconfig
from .errors import BoardError
from .network import Net

SSH_PORT = 22
READY_TIMEOUT_S = 90  # sshd's first start under emulation takes a few seconds
# qemu's CPU model: the Raspberry Pi 4's core (ARMv8.0 + crc, no dotprod/SVE), so XNNPACK picks
# the kernels a Pi 4 would. "cortex-a76" is a Pi 5; "max" is everything qemu can emulate.
DEFAULT_CPU = "cortex-a72"
REPO = Path(__file__).resolve().parents[1]


def edgekit_home() -> Path:
    return Path(os.environ.get("EDGEKIT_HOME") or Path.home() / ".edgekit").expanduser()


@dataclass
class Board:
    name: str
    index: int
    offline: bool
    user: str
    host_ip: str
    board_ip: str
    netns: str
    state_dir: str
    base: str
    cpu: str = DEFAULT_CPU
    suite: str = "bookworm"  # state files written before trixie boards existed

    @property
    def dir(self) -> Path:
        return Path(self.state_dir)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def net(self) -> Net:
        return Net(self.index)

    def ssh_argv(self, known_hosts: Path | None = None) -> list[str]:
        """A plain OpenSSH command line that logs in to this board."""
        known_hosts = known_hosts or edgekit_home() / "known_hosts"
        return ["ssh", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", f"{self.user}@{self.board_ip}"]


def boards_dir(home: Path) -> Path:
    return home / "boards"


def load_boards(home: Path | None = None) -> list[Board]:
    home = home or edgekit_home()
    boards = []
    for path in sorted(boards_dir(home).glob("*/state.json")):
        try:
            boards.append(Board(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return boards


# ---------------------------------------------------------------- the board's own files

def _personalise(board: Board) -> None:
    """What makes this board itself: hostname, its own host key, the key allowed to log in."""
    root = board.root
    (root / "etc/hostname").write_text(board.name + "\n")
    hosts = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{board.name}", f"{board.board_ip}\t{board.name}"]
    if not board.offline:
        hosts += [f"{addr}\t{name}" for addr, name in board.net.index_hosts().items()]
    (root / "etc/hosts").write_text("\n".join(hosts) + "\n")
    # device/ also detects qemu-user by itself; this makes it explicit for every ssh session.
    # QEMU_CPU reaches qemu through every program's environment (binfmt starts qemu per exec).
    (root / "etc/ssh/sshd_config.d/board.conf").write_text(
        f"SetEnv EDGEKIT_EMULATED=1 QEMU_CPU={board.cpu}\n")
    if not (root / "etc/nsswitch.conf").exists():
        (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    for path in (host_key, host_key.with_suffix(".pub"), board.key, board.key.with_suffix(".pub")):
        path.unlink(missing_ok=True)
    _keygen(host_key, f"root@{board.name}")
    _keygen(board.key, f"edgekit@{board.name}")
    uid, gid, home = _passwd_entry(root, board.user)
    ssh_dir = root / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(board.key.with_suffix(".pub").read_text())
    auth.chmod(0o600)
    for path in (ssh_dir, auth):
        os.chown(path, uid, gid)


def _keygen(path: Path, comment: str) -> None:
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                           "-f", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BoardError(f"ssh-keygen failed: {proc.stderr.strip()}")


def _passwd_entry(root: Path, user: str) -> tuple[int, int, str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise BoardError(f"user {user} missing from the board image")


# ---------------------------------------------------------------- processes

def _pidfile(board: Board, what: str) -> Path:
    return board.dir / f"{what}.pid"


def _launch(board: Board) -> None:
    """sshd as the board's only service, in its own UTS, PID and mount namespaces.

    /proc and /sys are mounted inside the chroot because XNNPACK reads the CPU's features and
    core count from them; without them nothing is delegated. tini, as PID 1, reaps orphans.
    """
    r = shlex.quote(str(board.root))
    script = f"""set -e
mount -t proc proc {r}/proc
mount -t sysfs -o ro sysfs {r}/sys
mount --rbind /dev {r}/dev
mount -t tmpfs -o mode=1777 tmpfs {r}/dev/shm
mount -t tmpfs -o mode=755 tmpfs {r}/run
mkdir -p {r}/run/sshd
hostname {shlex.quote(board.name)}
exec chroot {r} /usr/bin/tini -- /usr/sbin/sshd -D -e
"""
    argv = ["ip", "netns", "exec", board.netns, "unshare", "--uts", "--pid", "--fork",
            "--kill-child", "--mount", "--propagation", "private", "sh", "-c", script]
    with (board.dir / "board.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=dict(os.environ, QEMU_CPU=board.cpu),
                                start_new_session=True)
    _pidfile(board, "unshare").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        if children:
            _pidfile(board, "init").write_text(f"{children[0]}\n")
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise BoardError(f"{board.name}: the board's init did not start: {_log_tail(board)}")


def _start_relay(board: Board) -> None:
    routes = [f"{addr}={name}" for addr, name in board.net.index_hosts().items()]
    with (board.dir / "relay.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "emuboard.relay", *routes], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    _pidfile(board, "relay").write_text(f"{proc.pid}\n")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _log_tail(board: Board) -> str:
    try:
        lines = (board.dir / "board.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def _wait_for_sshd(board: Board) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    unshare_pid = int(_pidfile(board, "unshare").read_text())
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((board.board_ip, SSH_PORT), timeout=2) as s:
                s.settimeout(10)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if not Path(f"/proc/{unshare_pid}").exists():
            raise BoardError(f"{board.name}: sshd exited: {_log_tail(board)}")
        time.sleep(0.3)
    raise BoardError(f"{board.name}: sshd not answering on {board.board_ip}:{SSH_PORT} "
                     f"after {READY_TIMEOUT_S} s: {_log_tail(board)}")


def _belongs(pid: int, board: Board, what: str) -> bool:
    """Only signal a pid that is still ours (pids get reused): same netns, or our relay."""
    try:
        if what == "relay":
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            routes = {f"{addr}={name}" for addr, name in board.net.index_hosts().items()}
            return "emuboard.relay" in cmd and routes <= set(cmd)
        ours = os.stat(f"/run/netns/{board.netns}").st_ino
        return os.stat(f"/proc/{pid}/ns/net").st_ino == ours
    except OSError:
        return False


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            return


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# ---------------------------------------------------------------- start / stop

def start(count: int = 1, offline: bool = False, home: Path | None = None,
          cpu: str = DEFAULT_CPU, suite: str = image.DEFAULT_SUITE, log=print) -> list[Board]:
    """Make sure `count` boards of this kind (suite, online/offline, CPU) run; return them.

    The suite's image is built or extracted on first use. Running `make board` twice reuses the
    boards already up; boards of another kind keep running beside them (stop ends all); a board
    whose processes are gone (after a reboot, say) is cleaned up and replaced.
    """
    if suite not in image.SUITES:
        raise BoardError(f"unknown suite {suite!r} (known: {', '.join(image.SUITES)})")
    prereqs.ensure_host_ready(suite, log)
    home = home or edgekit_home()
    recipe = image.Recipe(suite=suite)
    base = image.ensure_base(recipe, log=log)
    for board in load_boards(home):
        if not healthy(board):
            log(f"board: {board.name} is not running any more; cleaning it up")
            teardown(board, home)
    started = [b for b in load_boards(home) if b.offline == offline and b.cpu == cpu
               and b.base == str(base)][:count]
    for board in started:
        log(f"board: {board.name} already running")
    taken = {b.index for b in load_boards(home)}
    for _ in range(count - len(started)):
        index = network.free_index(taken)
        taken.add(index)
        net = Net(index)
        name = f"edgekit-board{index}"
        state_dir = boards_dir(home) / name
        board = Board(name=name, index=index, offline=offline, user=recipe.user,
                      host_ip=net.host_ip, board_ip=net.board_ip, netns=net.netns,
                      state_dir=str(state_dir), base=str(base), cpu=cpu, suite=suite)
        t0 = time.monotonic()
        try:
            _start_one(board, home)
        except BaseException:
            teardown(board, home)
            raise
        log(f"board: {name} ({suite}) up in {time.monotonic() - t0:.1f} s "
            f"({'offline: no route to any package index' if offline else 'online: reaches PyPI only'})")
        started.append(board)
    return started


def _start_one(board: Board, home: Path) -> None:
    shutil.rmtree(board.dir, ignore_errors=True)
    for sub in ("upper", "work", "root"):
        (board.dir / sub).mkdir(parents=True)
    (board.dir / "state.json").write_text(json.dumps(asdict(board), indent=1) + "\n")
    opts = f"lowerdir={board.base},upperdir={board.dir / 'upper'},workdir={board.dir / 'work'}"
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(board.root)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BoardError(f"{board.name}: overlay mount failed: {proc.stderr.strip()}")
    _personalise(board)
    network.create(board.net, online=not board.offline)
    if not board.offline:
        _start_relay(board)
    _launch(board)
    _wait_for_sshd(board)
    sshconfig.write_entries(
        home, name=board.name, address=board.board_ip, port=SSH_PORT, user=board.user,
        identity=board.key,
        host_key_pub=(board.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text())
    probe = subprocess.run(board.ssh_argv(home / "known_hosts") + ["uname", "-m"],
                           capture_output=True, text=True, timeout=60)
    if probe.stdout.strip() != "aarch64":
        raise BoardError(f"{board.name}: ssh check failed: "
                         f"{(probe.stderr or probe.stdout).strip()[:200]}")


def healthy(board: Board) -> bool:
    """Its init is alive in its namespace, its root is mounted and its sshd answers."""
    try:
        pid = int(_pidfile(board, "init").read_text())
    except (OSError, ValueError):
        return False
    if not (_belongs(pid, board, "init") and _alive(pid) and _mounted(board.root)):
        return False
    try:
        with socket.create_connection((board.board_ip, SSH_PORT), timeout=3) as s:
            s.settimeout(10)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def teardown(board: Board, home: Path) -> None:
    """Processes (by pid file, then anything left in the namespace), mounts, network, entries."""
    # init first: tini passes SIGTERM on to sshd and exits; unshare then follows (it ignores
    # SIGTERM itself while it waits for its child).
    for what in ("init", "unshare", "relay"):
        path = _pidfile(board, what)
        try:
            pid = int(path.read_text())
        except (OSError, ValueError):
            continue
        if _belongs(pid, board, what):
            _kill([pid])
    if Path(f"/run/netns/{board.netns}").exists():
        _kill(network.pids(board.net))
    if _mounted(board.root):
        proc = subprocess.run(["umount", str(board.root)], capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", str(board.root)], capture_output=True)
    network.delete(board.net)
    sshconfig.remove_entries(home, name=board.name, address=board.board_ip)
    if not _mounted(board.root):
        shutil.rmtree(board.dir, ignore_errors=True)


def _mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in
               Path("/proc/mounts").read_text().splitlines())


def stop(home: Path | None = None, log=print) -> int:
    home = home or edgekit_home()
    boards = load_boards(home)
    for board in boards:
        teardown(board, home)
        log(f"board: {board.name} stopped")
    return len(boards)
