"""The one place a board spec becomes a Target (pyinfra-style: connectors chosen in one function).

`local` -> LocalTarget; anything else (`user@host:port`, a name, an ssh-config alias) -> SSHTarget.
A new kind of board (a container, say) is one more branch here plus its own module.
"""
from __future__ import annotations

from deploy.targets.base import Target

LOCAL_SPEC = "local"


def open_target(spec: str, *, ssh_key: str | None = None, trust_new_host: bool = False) -> Target:
    if spec == LOCAL_SPEC:
        from deploy.targets.local import LocalTarget
        return LocalTarget()
    from deploy.targets.ssh import SSHTarget   # paramiko/fabric only when a real board is used
    return SSHTarget(spec, ssh_key=ssh_key, trust_new_host=trust_new_host)


def board_name(spec: str) -> str:
    """The name results/<name>/ and messages use for a spec, without connecting."""
    if spec == LOCAL_SPEC:
        return LOCAL_SPEC
    from deploy.targets.ssh import target_name
    return target_name(spec)
