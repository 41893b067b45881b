"""`python -m deploy push`: preflight, runtime, release switch for one board, then a log line."""
from __future__ import annotations

import json
import time

from deploy.boards import extras, preflight, runtime
from deploy.boards.fleet import say
from deploy.boards.session import Options, describe, open_board, resolve_profile
from deploy.errors import DeployError
from deploy.releases import manage as board_releases, ship as releases
from deploy.settings import deploy_log


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
    target, board = open_board(spec, options)
    try:
        say(f"{target.name}: {describe(board)}")
        prof = resolve_profile(options, board, target)
        rt = runtime.choose(board, None if prof.runtime == "auto" else prof.runtime)
        added = tuple(runtime.added_for(options.runtimes, board))
        optional = extras.chosen(options.extras)
        preflight.check(target, board, need_runtime=runtime.needs_install(board, rt, added, optional))
        rt_info = runtime.ensure(target, board, rt, force_wheelhouse=options.force_wheelhouse,
                                 log=say, added=added, optional=optional)
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
