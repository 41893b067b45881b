"""One network namespace per board, joined to the host by a veth pair on a private /24.

Board i gets 10.213.i.0/24: the host end is .1, the board .2, and (online boards only) .101 and
.102 stand for the package index hosts (see relay.py). The namespace has no default route, so the
board can reach nothing but this /24, and the host sends nothing to any address outside it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BoardError

SUBNET_PREFIX = "10.213"
INDEX_HOSTS = {"101": "pypi.org", "102": "files.pythonhosted.org"}


@dataclass(frozen=True)
class Net:
    index: int

    @property
    def netns(self) -> str:
        return f"edgekit-b{self.index}"

    @property
    def host_if(self) -> str:
        return f"ekb{self.index}h"

    @property
    def subnet(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.0/24"

    def addr(self, last: int | str) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.{last}"

    @property
    def host_ip(self) -> str:
        return self.addr(1)

    @property
    def board_ip(self) -> str:
        return self.addr(2)

    def index_hosts(self) -> dict[str, str]:
        """address on the host's side -> package index host it stands for"""
        return {self.addr(last): name for last, name in INDEX_HOSTS.items()}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise BoardError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def in_use(net: Net) -> bool:
    """Taken if the namespace exists or any route/address on this host overlaps the /24."""
    if Path("/run/netns", net.netns).exists() or Path("/sys/class/net", net.host_if).exists():
        return True
    mine = ipaddress.ip_network(net.subnet)
    routes = _ip("-4", "route", "show", "table", "all").stdout.splitlines()
    for line in routes:
        dest = line.split()[0] if line.split() else ""
        if dest in ("default", "broadcast", "local", "unreachable"):
            dest = line.split()[1] if len(line.split()) > 1 else ""
        try:
            if ipaddress.ip_network(dest, strict=False).overlaps(mine) and \
                    ipaddress.ip_network(dest, strict=False).prefixlen > 0:
                return True
        except ValueError:
            continue
    return False


def free_index(taken: set[int]) -> int:
    for index in range(1, 250):
        if index not in taken and not in_use(Net(index)):
            return index
    raise BoardError("no free 10.213.x.0/24 subnet for another board")


def create(net: Net, online: bool) -> None:
    board_if = f"ekb{net.index}b"
    _ip("netns", "add", net.netns)
    _ip("link", "add", net.host_if, "type", "veth", "peer", "name", board_if, "netns", net.netns)
    _ip("addr", "add", f"{net.host_ip}/24", "dev", net.host_if)
    if online:
        for address in net.index_hosts():
            _ip("addr", "add", f"{address}/24", "dev", net.host_if)
    _ip("link", "set", net.host_if, "up")
    _ip("-n", net.netns, "link", "set", board_if, "name", "eth0")
    _ip("-n", net.netns, "addr", "add", f"{net.board_ip}/24", "dev", "eth0")
    _ip("-n", net.netns, "link", "set", "eth0", "up")
    _ip("-n", net.netns, "link", "set", "lo", "up")


def pids(net: Net) -> list[int]:
    out = _ip("netns", "pids", net.netns, check=False).stdout
    return [int(p) for p in out.split()]


def delete(net: Net) -> None:
    """Deleting the namespace destroys its veth end, and with it the host end."""
    _ip("netns", "delete", net.netns, check=False)
    _ip("link", "delete", net.host_if, check=False)
