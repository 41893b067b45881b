"""A board session: the options every command takes, opening a board, and the profile it runs.

Every deploy command (push, bench, profile, serve, releases, rollout) and the host's users of
deploy (the model search, `make perf`) start the same way: open the target, probe it, pick its
profile. This is that library; commands import it, never each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.boards import preflight, profiles
from deploy.errors import DeployError, UsageError
from deploy.targets.base import Target
from deploy.targets.registry import LOCAL_SPEC, board_name, open_target


@dataclass
class Options:
    ssh_key: str | None = None
    trust_new_host: bool = False
    profile: str | None = None        # PROFILE=: a name or a path; None = the board's own choice
    force_wheelhouse: bool = False
    stream: bool = False           # pass the agent's stderr through (single board only)
    keep: int = 3                  # releases kept on the board after a deploy (deploy.releases.manage)
    runtimes: tuple = ()           # RUNTIMES=: added runtimes to install / runtimes to bench (empty: default)
    extras: tuple = ()             # EXTRAS=: opt-in optional extras to install (device/requirements-extras.txt)


def open_board(spec: str, options: Options) -> tuple[Target, preflight.Board]:
    """Connect and probe; the caller closes the target."""
    target = open_target(spec, ssh_key=options.ssh_key, trust_new_host=options.trust_new_host)
    try:
        return target, preflight.probe(target)
    except Exception:
        target.close()
        raise


def resolve_profile(options: Options, board: preflight.Board, target: Target) -> profiles.Profile:
    """PROFILE= when given (it must fit the board's architecture), else the profile for this board."""
    if options.profile:
        prof = profiles.load(options.profile)
        if board.arch not in prof.arch:
            raise DeployError(f"profile {prof.name} expects {'/'.join(prof.arch)} but the board is {board.arch}")
        return prof
    return profiles.pick(board.model, board.arch, target.local)


def describe(board: preflight.Board) -> str:
    """One line saying what the board is, printed before anything is changed on it."""
    glibc = ".".join(map(str, board.glibc)) if board.glibc else "?"
    return (f"{board.arch}, {board.model or board.os or 'unknown OS'}, Python {'.'.join(map(str, board.python))}, "
            f"NumPy {board.numpy or 'none'}, "
            f"glibc {glibc}, {board.ram_mb} MB RAM, {board.free_mb} MB free")


def bundle_path(path: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"bundle {path} not found; run `make train quantize` first")
    return p


def parse_hosts(host: str | None, hosts: str | None) -> list[str]:
    """The boards to work on: `host` (default: this machine), or `hosts` as a,b,c or @fleet.txt
    (one host per line, # comments). Bad input is refused before any board is touched."""
    if hosts:
        if hosts.startswith("@"):
            path = Path(hosts[1:])
            if not path.is_file():
                raise UsageError(f"fleet file {path} not found")
            items = [l.split("#", 1)[0].strip() for l in path.read_text().splitlines()]
        else:
            items = [h.strip() for h in hosts.split(",")]
        specs = [h for h in items if h]
    else:
        specs = [host or LOCAL_SPEC]
    if not specs:
        raise UsageError("no hosts given")
    if len(set(specs)) != len(specs):
        raise UsageError("a host is listed twice")
    _refuse_bad_or_shared_names(specs)
    return specs


def _refuse_bad_or_shared_names(specs: list[str]) -> None:
    """A malformed host is bad input (exit 2, before any board is touched); results/<name>/ and
    messages use the board's name, so two hosts must not share one."""
    seen: dict[str, str] = {}
    for spec in specs:
        name = board_name(spec)
        if name in seen:
            raise UsageError(f"hosts {seen[name]} and {spec} would share results/{name}/; "
                              "give each board a distinct name (an ssh-config alias)")
        seen[name] = spec
