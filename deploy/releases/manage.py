"""Releases on a board after the switch: the service hand-over, pruning, listing and rollback.

The board does the work (deploy/releases/on_board.py, stdlib only, run through `release.board_call`);
this module turns its answers into one-line results and errors. A running `serve --follow`
moves to a new `current` by itself; deploy waits until the service says (GET /info on the board's
loopback) that it serves the new release, or why it will not, so a model that does not load
makes the deploy fail for that board while the old model keeps answering.
"""
from __future__ import annotations

import re

from deploy.errors import DeployError, UsageError
from deploy.releases.ship import board_call
from deploy.targets.base import Target

HANDOVER_TIMEOUT_S = 180.0      # the new model is loaded and checked (twice: child, then in-process)
KEEP_DEFAULT = 3


def mb(n: int) -> str:
    """A size as people read it (a tiny test model frees bytes, a real one megabytes)."""
    return f"{n} bytes" if n < 1000 else f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def handover(target: Target, home: str, release_id: str, timeout: float = HANDOVER_TIMEOUT_S) -> dict:
    """Wait for a running service to serve `release_id`. {"service": False} when none runs."""
    answer = board_call(target, "served", {"home": home, "release": release_id, "timeout": timeout},
                        timeout=timeout + 60)
    if not answer.get("service") or answer.get("follows") is False:
        return answer
    if answer.get("error"):
        raise DeployError(f"{target.name}: release {release_id} is installed but NOT served: the service "
                          f"refused it ({answer['error']}) and keeps serving {answer.get('release')}")
    if answer.get("release") != release_id:
        raise DeployError(f"{target.name}: the service still serves {answer.get('release')} after "
                          f"{timeout:.0f}s; release {release_id} is installed but not served")
    return answer


def prune(target: Target, home: str, keep: int) -> dict:
    return board_call(target, "prune", {"home": home, "keep": keep})


def listing(target: Target, home: str) -> dict:
    return board_call(target, "list", {"home": home})


def check_id(release_id: str | None) -> None:
    if release_id is not None and not re.fullmatch(r"[0-9a-f]{12}", release_id):
        raise UsageError(f"RELEASE={release_id!r} is not a release id (12 hex digits; see `make releases`)")


def switch(target: Target, home: str, release_id: str | None) -> dict:
    """Point `current` at `release_id` (None: the previous one), then wait for the service."""
    check_id(release_id)
    answer = board_call(target, "switch", {"home": home, "id": release_id})
    served = handover(target, home, answer["release"])
    return dict(answer, served=served)


def served_text(answer: dict) -> str:
    if not answer.get("service"):
        return "no service running"
    if answer.get("follows") is False:
        return "a service runs but does not follow releases (restart it with `make serve`)"
    return f"service serves it (model sha256 {str(answer.get('sha256'))[:12]})"


def render(listing_answer: dict, host: str) -> str:
    rows = listing_answer["releases"]
    if not rows:
        return f"{host}: no releases"
    lines = [f"{host}:", f"  {'id':<12}  {'bundle':<16}  {'created':<20}  {'size':>9}  current  served"]
    for r in rows:
        lines.append(f"  {r['id']:<12}  {str(r['bundle'])[:16]:<16}  {str(r['created']):<20}  "
                     f"{mb(r['size_bytes']):>9}  {'*' if r['current'] else '':^7}  {'*' if r['served'] else '':^6}")
    return "\n".join(lines)
