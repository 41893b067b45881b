"""Several boards at once: one thread per board, a failure stays with its board, one summary.

Wall time for N boards is close to the slowest board, not the sum: each board's work is mostly
waiting on its network and CPU.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from deploy.errors import DeployError

_print_lock = threading.Lock()


def say(line: str) -> None:
    """Print one whole line; lines from parallel boards never interleave mid-line."""
    with _print_lock:
        print(line, flush=True)


@dataclass
class Outcome:
    host: str
    ok: bool
    detail: str
    seconds: float
    data: dict = field(default_factory=dict)


def run_all(hosts: list[str], work: Callable[[str], tuple[str, dict]]) -> list[Outcome]:
    """Run `work(host)` for every host in parallel; `work` returns (one-line detail, data)."""
    def one(host: str) -> Outcome:
        start = time.monotonic()
        try:
            detail, data = work(host)
            return Outcome(host, True, detail, time.monotonic() - start, data)
        except DeployError as e:
            return Outcome(host, False, str(e), time.monotonic() - start)
        except Exception as e:   # a bug or an unexpected board reply must not sink the other boards
            return Outcome(host, False, f"unexpected {type(e).__name__}: {e}", time.monotonic() - start)

    if len(hosts) == 1:
        return [one(hosts[0])]
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        return list(pool.map(one, hosts))


def print_summary(outcomes: list[Outcome], what: str) -> None:
    width = max(len(o.host) for o in outcomes)
    out = sys.stdout if all(o.ok for o in outcomes) else sys.stderr
    with _print_lock:
        if len(outcomes) > 1:
            print(f"{what} summary:", file=out)
        for o in outcomes:
            status = "ok    " if o.ok else "FAILED"
            print(f"  {o.host:<{width}}  {status} {o.seconds:6.1f}s  {o.detail}", file=out, flush=True)
