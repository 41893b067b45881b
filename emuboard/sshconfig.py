"""The board's entries in $EDGEKIT_HOME/ssh_config and known_hosts, where deploy looks for them.

Each board's Host block sits between marker lines, so a restart replaces it and `stop` removes it
without touching anything else in those files.
"""

from __future__ import annotations

from pathlib import Path

BEGIN, END = "# >>> edgekit board {name}", "# <<< edgekit board {name}"


def write_entries(home: Path, *, name: str, address: str, port: int, user: str,
                  identity: Path, host_key_pub: str) -> None:
    """A Host alias deploy and plain ssh both understand, and the board's pinned host key."""
    remove_entries(home, name=name, address=address)
    known = home / "known_hosts"
    block = "\n".join([
        BEGIN.format(name=name) + " (written by `make board`, removed by `make board-stop`)",
        f"Host {name}",
        f"  HostName {address}",
        f"  User {user}",
        f"  Port {port}",
        f"  IdentityFile {identity}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "  StrictHostKeyChecking yes",
        END.format(name=name), ""])
    key_type, key_b64 = host_key_pub.split()[:2]
    host = name + "," + (address if port == 22 else f"[{address}]:{port}")
    _append(home / "ssh_config", block)
    _append(known, f"{host} {key_type} {key_b64}\n")


def remove_entries(home: Path, *, name: str, address: str) -> None:
    config = home / "ssh_config"
    if config.exists():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        out, skipping = [], False
        for line in config.read_text().splitlines(keepends=True):
            text = line.rstrip("\n")
            if text == begin or text.startswith(begin + " "):
                skipping = True
            elif skipping and text == end:
                skipping = False
            elif not skipping:
                out.append(line)
        config.write_text("".join(out))
    known = home / "known_hosts"
    if known.exists():
        names = {name, address}
        keep = [line for line in known.read_text().splitlines(keepends=True)
                if not (line.split() and {h.split("]:")[0].lstrip("[")
                                          for h in line.split()[0].split(",")} & names)]
        known.write_text("".join(keep))


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as f:
        f.write(text)
    path.chmod(0o600)
