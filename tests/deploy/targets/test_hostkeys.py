"""Host-key checking (deploy/targets/hostkeys.py) with real paramiko keys and a real known_hosts file.

The end-to-end refusals against a real sshd live in test_ssh_target.py; these pin each decision
fast enough for `make mutate`.
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import paramiko
import pytest

from deploy.targets import hostkeys


@pytest.fixture(scope="module")
def key():
    return paramiko.ECDSAKey.generate(bits=256)


def test_files_default_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert hostkeys.known_hosts_files({}) == [tmp_path / "user" / ".ssh" / "known_hosts",
                                              tmp_path / "home" / "known_hosts"]
    named = {"userknownhostsfile": "~/a_hosts /etc/b_hosts"}
    assert hostkeys.known_hosts_files(named) == [tmp_path / "user" / "a_hosts", Path("/etc/b_hosts"),
                                                 tmp_path / "home" / "known_hosts"]


def test_load_into_reads_every_existing_file(tmp_path, key):
    other = paramiko.ECDSAKey.generate(bits=256)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text(f"[board]:2222 {key.get_name()} {key.get_base64()}\n")
    b.write_text(f"otherboard {other.get_name()} {other.get_base64()}\n")
    client = paramiko.SSHClient()
    hostkeys.load_into(client, [a, tmp_path / "missing", b])
    keys = client._system_host_keys  # what paramiko checks a server's key against (with get_host_keys())
    assert keys.lookup("[board]:2222")[key.get_name()] == key
    assert keys.lookup("otherboard")[other.get_name()] == other


def test_unknown_host_is_refused_with_both_ways_to_trust_it(key):
    client = paramiko.SSHClient()
    policy = hostkeys.RefuseUnknownHost("pi@board:2222")
    assert policy.spec == "pi@board:2222"
    with pytest.raises(hostkeys.UnknownHostKey) as exc:
        policy.missing_host_key(client, "[10.0.0.5]:2222", key)
    assert str(exc.value) == (
        f"unknown host key for [10.0.0.5]:2222 ({key.get_name()} {key.fingerprint}); refusing. Check the "
        "fingerprint, then trust it with `ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts` or rerun with "
        "TRUST_NEW_HOST=1 (--trust-new-host)")
    assert isinstance(exc.value, paramiko.SSHException)
    with pytest.raises(hostkeys.UnknownHostKey, match=r"trust it with `ssh-keyscan board >> ~/.ssh/known_hosts`"):
        policy.missing_host_key(client, "board", key)
    assert client.get_host_keys().lookup("board") is None, "a refused key is never trusted"


def test_split_entry():
    assert hostkeys._split_entry("[h]:2222") == ("h", 2222)
    assert hostkeys._split_entry("h") == ("h", 22)
    assert hostkeys._split_entry("[h]") == ("[h]", 22)
    assert hostkeys._split_entry("[::1]:22") == ("::1", 22)


def test_trust_new_host_records_the_key(tmp_path, key):
    record = tmp_path / "fresh" / "known_hosts"
    client = paramiko.SSHClient()
    hostkeys.RecordNewHost(record).missing_host_key(client, "[board]:2222", key)
    assert record.read_text() == f"[board]:2222 {key.get_name()} {key.get_base64()}\n"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    assert client.get_host_keys().lookup("[board]:2222")[key.get_name()] == key
    # a second host appends; the first line stays
    other = paramiko.ECDSAKey.generate(bits=256)
    hostkeys.RecordNewHost(record).missing_host_key(client, "b2", other)
    assert record.read_text().splitlines() == [f"[board]:2222 {key.get_name()} {key.get_base64()}",
                                               f"b2 {other.get_name()} {other.get_base64()}"]
    # and what was written is readable by the loader (the next connection trusts it)
    fresh = paramiko.SSHClient()
    hostkeys.load_into(fresh, [record])
    assert fresh._system_host_keys.lookup("b2")[other.get_name()] == other


def test_parallel_records_do_not_interleave(tmp_path):
    record = tmp_path / "known_hosts"
    keys = [paramiko.ECDSAKey.generate(bits=256) for _ in range(8)]
    client = paramiko.SSHClient()
    threads = [threading.Thread(target=hostkeys.RecordNewHost(record).missing_host_key,
                                args=(client, f"h{i}", k)) for i, k in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = sorted(record.read_text().splitlines())
    assert lines == sorted(f"h{i} {k.get_name()} {k.get_base64()}" for i, k in enumerate(keys))
    assert os.path.getsize(record) == sum(len(ln) + 1 for ln in lines)


def test_record_creates_missing_parents(tmp_path, key):
    record = tmp_path / "a" / "b" / "known_hosts"
    hostkeys.RecordNewHost(record).missing_host_key(paramiko.SSHClient(), "h", key)
    assert record.read_text() == f"h {key.get_name()} {key.get_base64()}\n"


def test_record_replaces_a_key_of_the_same_type_in_the_session(tmp_path):
    old, new = paramiko.ECDSAKey.generate(bits=256), paramiko.ECDSAKey.generate(bits=256)
    client = paramiko.SSHClient()
    client.get_host_keys().add("h", old.get_name(), old)
    hostkeys.RecordNewHost(tmp_path / "kh").missing_host_key(client, "h", new)
    assert client.get_host_keys().lookup("h")[new.get_name()] == new
