"""SSH host-key checking: fabric would silently accept any unknown key, edgekit refuses it.

An unknown host is refused with a message saying how to trust it. Only the explicit opt-in
(--trust-new-host / TRUST_NEW_HOST=1) records a new key, like OpenSSH's `accept-new`.
A changed key is always refused (paramiko raises BadHostKeyException before asking the policy).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import paramiko

from deploy.settings import edgekit_home

_write_lock = threading.Lock()   # fleets connect in parallel; appends must not interleave


class UnknownHostKey(paramiko.SSHException):
    pass


def known_hosts_files(ssh_config: dict) -> list[Path]:
    """Files to read keys from: UserKnownHostsFile (if ssh config names it), else the user's,
    plus $EDGEKIT_HOME/known_hosts (where the emulated board tool pins its keys)."""
    named = ssh_config.get("userknownhostsfile")
    files = [Path(p).expanduser() for p in named.split()] if named else [Path.home() / ".ssh" / "known_hosts"]
    files.append(edgekit_home() / "known_hosts")
    return files


def load_into(client: paramiko.SSHClient, files: list[Path]) -> None:
    for path in files:
        if path.is_file():
            client.load_system_host_keys(str(path))


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." like ssh-keygen -l


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse, and tell the user the two ways to trust the host."""

    def __init__(self, spec: str):
        self.spec = spec

    def missing_host_key(self, client, hostname, key):
        host, port = _split_entry(hostname)
        scan = f"ssh-keyscan -p {port} {host} >> ~/.ssh/known_hosts" if port != 22 else \
            f"ssh-keyscan {host} >> ~/.ssh/known_hosts"
        raise UnknownHostKey(
            f"unknown host key for {hostname} ({key.get_name()} {_fingerprint(key)}); refusing. "
            f"Check the fingerprint, then trust it with `{scan}` or rerun with TRUST_NEW_HOST=1 "
            f"(--trust-new-host)")


class RecordNewHost(paramiko.MissingHostKeyPolicy):
    """The opt-in: accept a host never seen before and append its key to `record_to`."""

    def __init__(self, record_to: Path):
        self.record_to = record_to

    def missing_host_key(self, client, hostname, key):
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _write_lock:
            self.record_to.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.record_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


def _split_entry(entry: str) -> tuple[str, int]:
    if entry.startswith("[") and "]:" in entry:
        host, port = entry[1:].split("]:", 1)
        return host, int(port)
    return entry, 22
