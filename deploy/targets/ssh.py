"""The SSH board: a fabric Connection with host-key checking and a bounded connect timeout.

Host aliases come from ~/.ssh/config and $EDGEKIT_HOME/ssh_config (the emulated board tool
writes its entries there), keys and agent as ssh does, SSH_KEY to name one key.
"""
from __future__ import annotations

import io
import math
import re
import secrets
import shlex
import threading
import socket
import sys
import time
from pathlib import Path

import invoke
import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import NoValidConnectionsError
from tqdm import tqdm

from deploy.errors import DeployError, UsageError
from deploy.settings import bars_off, connect_timeout, edgekit_home
from deploy.targets import hostkeys
from deploy.targets.base import RunResult, relay_line

KILL_GRACE_S = 10      # after TERM at the timeout, `timeout -k` sends KILL this much later


def ssh_config() -> paramiko.SSHConfig:
    """The user's ssh config first (it wins, as in OpenSSH), then edgekit's own."""
    config = paramiko.SSHConfig()
    for path in (Path.home() / ".ssh" / "config", edgekit_home() / "ssh_config"):
        if path.is_file():
            with open(path) as f:
                config.parse(f)
    return config


def parse_spec(spec: str) -> tuple[str | None, str, int | None]:
    """`user@host:port` -> (user, host, port); user and port are optional."""
    m = re.fullmatch(r"(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?", spec)
    if not m:
        raise UsageError(f"bad host {spec!r}: expected user@host:port, a name, or an ssh-config alias")
    user, host, port = m.groups()
    return user, host, int(port) if port else None


def target_name(spec: str) -> str:
    """A file-system-safe board name for results/<name>/ (the alias or host as the user typed it)."""
    _, host, port = parse_spec(spec)
    return f"{host}_{port}" if port else host


class SSHTarget:
    def __init__(self, spec: str, *, ssh_key: str | None = None, trust_new_host: bool = False):
        user, host, port = parse_spec(spec)
        self.name = target_name(spec)
        self.local = False
        self.spec = spec
        timeout = connect_timeout()
        connect_kwargs = {"banner_timeout": timeout, "auth_timeout": timeout}
        if ssh_key:
            if not Path(ssh_key).expanduser().is_file():
                raise UsageError(f"SSH key {ssh_key} not found")
            connect_kwargs["key_filename"] = [str(Path(ssh_key).expanduser())]
        config = Config(ssh_config=ssh_config())
        self.conn = Connection(host, user=user, port=port, config=config,
                               connect_timeout=int(timeout), connect_kwargs=connect_kwargs)
        # fabric builds each ProxyJump hop as its own Connection with AutoAddPolicy: check every hop
        hop = self.conn
        while isinstance(hop, Connection):
            label = spec if hop is self.conn else f"{hop.original_host} (ProxyJump for {spec})"
            _check_host_keys(hop, label, trust_new_host)
            hop = hop.gateway
        self._open()

    def _open(self) -> None:
        where = f"{self.spec} ({self.conn.host}:{self.conn.port})"
        try:
            self.conn.open()
        except hostkeys.UnknownHostKey as e:
            raise DeployError(f"{self.name}: {e}") from None
        except paramiko.BadHostKeyException as e:
            raise DeployError(
                f"{self.name}: HOST KEY CHANGED for {where} (got {e.key.get_name()} "
                f"{e.key.fingerprint}); refusing. If the board was reinstalled, remove the old key "
                f"with `ssh-keygen -R` and trust the new one") from None
        except paramiko.AuthenticationException:
            raise DeployError(f"{self.name}: authentication failed as {self.conn.user}@{where}; "
                              "check SSH_KEY= or your ssh agent") from None
        except socket.gaierror:
            raise DeployError(f"{self.name}: cannot resolve host {self.conn.host!r} (DNS)") from None
        except (NoValidConnectionsError, ConnectionRefusedError) as e:
            causes = list(getattr(e, "errors", {}).values()) or [e]
            if all(isinstance(c, ConnectionRefusedError) for c in causes):
                raise DeployError(f"{self.name}: unreachable: connection refused at {self.conn.host}:{self.conn.port} "
                                  "(no sshd listening there?)") from None
            why = getattr(causes[0], "strerror", None) or _short(causes[0])
            raise DeployError(f"{self.name}: unreachable at {self.conn.host}:{self.conn.port}: {why}") from None
        except (socket.timeout, TimeoutError):
            raise DeployError(f"{self.name}: unreachable: no answer from {self.conn.host}:{self.conn.port} within "
                              f"{connect_timeout():.0f}s (board off or unreachable?)") from None
        except (ConnectionError, OSError) as e:
            raise DeployError(f"{self.name}: unreachable at {where}: {_short(e)}") from None
        except paramiko.SSHException as e:
            raise DeployError(f"{self.name}: ssh error with {where}: {_short(e)}") from None

    def run(self, command: str, *, timeout: float | None = None, stream: bool = False,
            stdin: str | None = None) -> RunResult:
        # The marker ($0 of the remote shell, visible in its command line) lets Ctrl-C find and stop it.
        marker = f"edgekit-run-{secrets.token_hex(6)}"
        remote = "sh -c " + shlex.quote(command) + " " + marker
        local_timeout = None
        if timeout is not None:
            # Closing the channel does not stop a command without a pty, so the board enforces the
            # timeout itself (coreutils `timeout` signals the whole process group); our own timer
            # is only the backstop for a link that stalls.
            secs = max(1, math.ceil(timeout))
            remote = (f"if command -v timeout >/dev/null 2>&1; then exec timeout -k {KILL_GRACE_S} {secs} "
                      f"{remote}; else exec {remote}; fi")
            local_timeout = secs + KILL_GRACE_S + 5
        relay = _LineRelay() if stream else None
        started = time.monotonic()
        try:
            res = self._run_interruptible(marker, lambda: self.conn.run(
                remote, hide="out" if stream else True, warn=True, timeout=local_timeout, err_stream=relay,
                in_stream=io.StringIO(stdin) if stdin is not None else False))
        except invoke.CommandTimedOut:
            raise DeployError(f"{self.name}: command timed out after {timeout:.0f}s", kind="timeout") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise DeployError(f"{self.name}: connection lost: {_short(e)}", kind="transport") from None
        finally:
            if relay:
                relay.end()
        if timeout is not None and res.return_code in (124, 137) and time.monotonic() - started >= timeout - 0.5:
            raise DeployError(f"{self.name}: command timed out after {timeout:.0f}s", kind="timeout")
        return RunResult(res.return_code, res.stdout, res.stderr)

    def _run_interruptible(self, marker: str, call):
        """`call()` in a worker, so Ctrl-C here stops the remote command at once: invoke catches a
        KeyboardInterrupt in its own wait, forwards it, and keeps waiting until the command ends
        (a model being timed on the board: tens of seconds)."""
        outcome: list = []

        def work() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as e:  # handed to the caller's thread below
                outcome.append((False, e))

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            self._cancel(marker)
            raise
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def put(self, local: Path, remote: str) -> None:
        size = Path(local).stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"{self.name}: {Path(local).name}"[:40],
                   leave=False, disable=bars_off() or size < 4 * 1024 * 1024 or not sys.stderr.isatty())
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                self.conn.sftp().put(str(local), remote, callback=lambda done, _total: bar.update(done - bar.n))
            except BaseException as e:  # handed to the caller's thread below
                failure.append(e)

        # The upload runs in a worker so that Ctrl-C here can close the transport at once: interrupting
        # paramiko inside an SFTP write can leave it waiting forever in SFTPFile.close().
        worker = threading.Thread(target=upload, daemon=True)
        with bar:
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.2)
            except KeyboardInterrupt:
                self._drop_transport()
                raise
        if failure:
            e = failure[0]
            if isinstance(e, (paramiko.SSHException, OSError, EOFError)):
                raise DeployError(f"{self.name}: upload of {Path(local).name} failed: {_short(e)}") from None
            raise e

    def _cancel(self, marker: str) -> None:
        """After Ctrl-C: stop the remote command (its `timeout` wrapper takes the whole process group)."""
        try:
            chan = self.conn.client.get_transport().open_session(timeout=5)
            chan.settimeout(10)
            chan.exec_command(f"pkill -TERM -f {shlex.quote('[' + marker[0] + ']' + marker[1:])}")  # not itself
            chan.recv_exit_status()
        except Exception:  # best effort: the board's own timeout still ends the command
            pass
        self._drop_transport()

    def _drop_transport(self) -> None:
        transport = self.conn.client.get_transport() if self.conn.client else None
        if transport is not None:
            transport.close()


    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:      # closing a dropped connection must not hide why it dropped
            pass


def _check_host_keys(conn: Connection, spec: str, trust_new_host: bool) -> None:
    """Known keys from the files ssh config names (and edgekit's), unknown ones refused or recorded."""
    if conn.ssh_config.get("identitiesonly", "").lower() == "yes":
        # as ssh does: only the configured key, so agent keys cannot exhaust MaxAuthTries
        conn.connect_kwargs.update(allow_agent=False, look_for_keys=False)
    files = hostkeys.known_hosts_files(conn.ssh_config)
    hostkeys.load_into(conn.client, files)
    policy = hostkeys.RecordNewHost(files[0]) if trust_new_host else hostkeys.RefuseUnknownHost(spec)
    conn.client.set_missing_host_key_policy(policy)


class _LineRelay:
    """The board's stderr, passed through as it comes; `end` finishes a last line left open."""

    def __init__(self):
        self.open_line = False

    def write(self, text: str) -> None:
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()
            self.open_line = not text.endswith("\n")

    def flush(self) -> None:
        sys.stderr.flush()

    def end(self) -> None:
        if self.open_line:
            relay_line("")
            self.open_line = False


def _short(e: BaseException) -> str:
    text = str(e).strip().rstrip(":").splitlines()
    return text[0] if text else type(e).__name__
