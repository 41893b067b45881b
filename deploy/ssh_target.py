"""The SSH board: a fabric Connection with host-key checking and a bounded connect timeout.

Host aliases come from ~/.ssh/config and $EDGEKIT_HOME/ssh_config (the emulated board tool
writes its entries there), keys and agent as ssh does, SSH_KEY to name one key.
"""
from __future__ import annotations

import io
import re
import shlex
import socket
import sys
from pathlib import Path

import invoke
import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import NoValidConnectionsError
from tqdm import tqdm

from deploy import hostkeys
from deploy.errors import DeployError
from deploy.settings import connect_timeout, edgekit_home, quiet
from deploy.target import RunResult, platform_of


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
        raise DeployError(f"bad host {spec!r}: expected user@host:port, a name, or an ssh-config alias")
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
        self.spec = spec
        timeout = connect_timeout()
        connect_kwargs = {"banner_timeout": timeout, "auth_timeout": timeout}
        if ssh_key:
            if not Path(ssh_key).expanduser().is_file():
                raise DeployError(f"SSH key {ssh_key} not found")
            connect_kwargs["key_filename"] = [str(Path(ssh_key).expanduser())]
        config = Config(ssh_config=ssh_config())
        self.conn = Connection(host, user=user, port=port, config=config,
                               connect_timeout=int(timeout), connect_kwargs=connect_kwargs)
        if self.conn.ssh_config.get("identitiesonly", "").lower() == "yes":
            # as ssh does: only the configured key, so agent keys cannot exhaust MaxAuthTries
            self.conn.connect_kwargs.update(allow_agent=False, look_for_keys=False)
        files = hostkeys.known_hosts_files(self.conn.ssh_config)
        hostkeys.load_into(self.conn.client, files)
        policy = hostkeys.RecordNewHost(files[0]) if trust_new_host else hostkeys.RefuseUnknownHost(spec)
        self.conn.client.set_missing_host_key_policy(policy)
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
        except (NoValidConnectionsError, ConnectionError, socket.timeout, TimeoutError, OSError) as e:
            raise DeployError(f"{self.name}: unreachable at {where}: {_short(e)}") from None
        except paramiko.SSHException as e:
            raise DeployError(f"{self.name}: ssh error with {where}: {_short(e)}") from None

    def run(self, command: str, *, timeout: float | None = None, stream: bool = False,
            stdin: str | None = None) -> RunResult:
        try:
            res = self.conn.run("sh -c " + shlex.quote(command), hide="out" if stream else True,
                                warn=True, timeout=timeout, err_stream=sys.stderr if stream else None,
                                in_stream=io.StringIO(stdin) if stdin is not None else False)
        except invoke.CommandTimedOut:
            raise DeployError(f"{self.name}: command timed out after {timeout:.0f}s") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise DeployError(f"{self.name}: connection lost: {_short(e)}") from None
        return RunResult(res.return_code, res.stdout, res.stderr)

    def put(self, local: Path, remote: str) -> None:
        size = Path(local).stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"{self.name}: {Path(local).name}"[:40],
                   leave=False, disable=quiet() or size < 4 * 1024 * 1024 or not sys.stderr.isatty())
        try:
            with bar:
                self.conn.sftp().put(str(local), remote, callback=lambda done, _total: bar.update(done - bar.n))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise DeployError(f"{self.name}: upload of {Path(local).name} failed: {_short(e)}") from None

    def get(self, remote: str, local: Path) -> None:
        try:
            self.conn.get(remote, str(local))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise DeployError(f"{self.name}: download of {remote} failed: {_short(e)}") from None

    def platform(self) -> dict:
        return platform_of(self)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:      # closing a dropped connection must not hide why it dropped
            pass


def _short(e: BaseException) -> str:
    text = str(e).strip().rstrip(":").splitlines()
    return text[0] if text else type(e).__name__
