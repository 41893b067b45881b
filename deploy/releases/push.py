"""`python -m deploy push`: preflight, runtime, release switch for one board, then a log line."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.boards import preflight

from deploy.boards import profiles

from deploy.releases import ship as releases

from deploy.releases import manage as board_releases

from deploy.boards import runtime
from deploy.errors import DeployError, UsageError
from deploy.boards.fleet import say
from deploy.settings import deploy_log
from deploy.targets.base import Target
from deploy.targets.registry import open_target


@dataclass
class Options:
    ssh_key: str | None = None
    trust_new_host: bool = False
    profile: str | None = None
    force_wheelhouse: bool = False
    stream: bool = False           # pass the agent's stderr through (single board only)
    keep: int = 3                  # releases kept on the board after a deploy (deploy.releases.manage)


def resolve_profile(options: Options, board: preflight.Board, target: Target) -> profiles.Profile:
    if options.profile:
        prof = profiles.load(options.profile)
        if board.arch not in prof.arch:
            raise DeployError(f"profile {prof.name} expects {'/'.join(prof.arch)} but the board is {board.arch}")
        return prof
    return profiles.pick(board.model, board.arch, target.local)


def describe(board: preflight.Board) -> str:
    glibc = ".".join(map(str, board.glibc)) if board.glibc else "?"
    return (f"{board.arch}, {board.model or board.os or 'unknown OS'}, Python {'.'.join(map(str, board.python))}, "
            f"NumPy {board.numpy or 'none'}, "
            f"glibc {glibc}, {board.ram_mb} MB RAM, {board.free_mb} MB free")


def push_one(spec: str, rel: releases.Release, options: Options) -> tuple[str, dict]:
    """Deploy `rel` to one board; returns (one-line summary, details for the log).
    A failure is logged too, so the deploy log tells the whole story of a board."""
    try:
        return _push_one(spec, rel, options)
    except DeployError as e:
        _log_failure(spec, rel, str(e))
        raise
    except Exception as e:     # a bug or an odd board reply: still logged, still one line
        message = f"{spec}: deploy failed unexpectedly ({type(e).__name__}: {e})"
        _log_failure(spec, rel, message)
        raise DeployError(message) from None


def _log_failure(spec: str, rel: releases.Release, error: str) -> None:
    _append_log({"utc": _utc(), "host": spec, "bundle": rel.bundle_name, "release": rel.id,
                 "ok": False, "error": error})


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _push_one(spec: str, rel: releases.Release, options: Options) -> tuple[str, dict]:
    started = time.monotonic()
    target = open_target(spec, ssh_key=options.ssh_key, trust_new_host=options.trust_new_host)
    try:
        board = preflight.probe(target)
        say(f"{target.name}: {describe(board)}")
        prof = resolve_profile(options, board, target)
        rt = runtime.choose(board, None if prof.runtime == "auto" else prof.runtime)
        preflight.check(target, board, need_runtime=runtime.needs_install(board, rt))
        rt_info = runtime.ensure(target, board, rt, force_wheelhouse=options.force_wheelhouse,
                                 log=say)
        shipped = releases.ship(target, board.home, rel)
        served = board_releases.handover(target, board.home, rel.id)   # raises if the service refuses it
        pruned = board_releases.prune(target, board.home, options.keep)
    finally:
        target.close()
    total = round(time.monotonic() - started, 2)
    bytes_sent = shipped["bytes_sent"] + rt_info["bytes_sent"]
    record = {"utc": _utc(), "host": target.name, "ok": True,
              "bundle": rel.bundle_name, "release": rel.id, "profile": prof.name,
              "runtime": rt_info, "files_sent": shipped["files_sent"], "bytes_sent": bytes_sent,
              "release_bytes_sent": shipped["bytes_sent"], "previous": shipped["previous"],
              "seconds": total, "board": board.__dict__, "served": served, "pruned": pruned}
    _append_log(record)
    rt_text = f"{rt_info['runtime']} ({'installed via ' + rt_info['via'] if rt_info['installed'] else 'already installed'})"
    line = (f"release {rel.id} ({rel.bundle_name}) active; runtime {rt_text}; sent {shipped['files_sent']} "
            f"files, {bytes_sent} bytes in {total:.1f}s; {board_releases.served_text(served)}; pruned "
            f"{len(pruned['removed'])} release(s), freed {board_releases.mb(pruned['freed_bytes'])}")
    say(f"{target.name}: {line}")
    return line, record


def _append_log(record: dict) -> None:
    path = deploy_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")


def open_board(spec: str, options: Options) -> tuple[Target, preflight.Board]:
    """Connect and probe (used by bench/serve, which need a deployed release)."""
    target = open_target(spec, ssh_key=options.ssh_key, trust_new_host=options.trust_new_host)
    try:
        return target, preflight.probe(target)
    except Exception:
        target.close()
        raise


def bundle_path(path: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"bundle {path} not found; run `make train quantize` first")
    return p
