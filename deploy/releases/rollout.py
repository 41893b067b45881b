"""Fleet rollouts (`make deploy HOSTS=... ROLLOUT=canary|rolling BATCH=N MAX_FAIL=P`), `make releases`
and `make rollback`.

Ansible's conventions: `serial` (the first batch is the canary, then BATCH boards at a time) and
`max_fail_percentage` (a batch with more than MAX_FAIL % of its boards failed stops the rollout).
A board passes when the release is deployed, a running service serves it (deploy's hand-over),
and `bench` keeps the profile's budgets. Failed boards are switched back to the release they ran
before; boards of later batches are never touched. The default (no ROLLOUT) stays all in parallel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.boards import fleet
from deploy.boards.fleet import say
from deploy.boards.session import Options, open_board
from deploy.errors import DeployError
from deploy.releases import manage as releases
from deploy.releases.push import push_one
from deploy.releases.ship import Release


@dataclass
class Plan:
    mode: str                 # canary | rolling
    batch: int = 1            # boards per batch after the canary (rolling: every batch)
    max_fail: float = 0.0     # percent of a batch allowed to fail


def batches(hosts: list[str], plan: Plan) -> list[list[str]]:
    """canary: [first], then BATCH at a time; rolling: BATCH at a time from the start."""
    first, rest = (hosts[:1], hosts[1:]) if plan.mode == "canary" else ([], hosts)
    size = max(1, plan.batch)
    out = [first] if first else []
    out += [rest[i:i + size] for i in range(0, len(rest), size)]
    return out


def current_of(spec: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        answer = releases.listing(target, board.home)
        return answer.get("current") or "none", answer
    finally:
        target.close()


def _deploy_and_check(spec: str, rel: Release, bundle: Path, options: Options) -> tuple[str, dict]:
    from deploy.measure.bench import bench_one
    line, record = push_one(spec, rel, options)
    bench_line, _ = bench_one(spec, bundle, options)
    return f"release {rel.id} deployed and checked ({bench_line})", record


def _roll_back(spec: str, release_id: str | None, options: Options) -> str:
    if not release_id or release_id == "none":
        return "nothing to roll back to (no earlier release)"
    try:
        target, board = open_board(spec, options)
        try:
            answer = releases.switch(target, board.home, release_id)
        finally:
            target.close()
    except DeployError as e:
        return f"rollback to {release_id} FAILED: {e}"
    return f"rolled back to {answer['release']}"


def rollout(hosts: list[str], rel: Release, bundle: Path, options: Options, plan: Plan) -> int:
    """Deploy batch by batch; 0 when every board runs the new release, else 1."""
    before_out = fleet.run_all(hosts, lambda h: current_of(h, options))
    before = {o.host: (o.detail if o.ok else None) for o in before_out}
    unreachable = [o for o in before_out if not o.ok]
    if unreachable:
        for o in unreachable:
            say(f"{o.host}: {o.detail}")
        print(f"deploy: error: rollout not started: {len(unreachable)} board(s) unreachable", flush=True)
        return 1
    state = {h: (before[h], "untouched") for h in hosts}
    groups = batches(hosts, plan)
    stopped = None
    for n, group in enumerate(groups, 1):
        say(f"rollout: batch {n}/{len(groups)} ({plan.mode}): {', '.join(group)}")
        outcomes = fleet.run_all(group, lambda h: _deploy_and_check(h, rel, bundle, options))
        failed = [o for o in outcomes if not o.ok]
        for o in outcomes:
            if o.ok:
                state[o.host] = (rel.id, "updated")
            else:
                say(f"{o.host}: FAILED {o.detail}")
                back = _roll_back(o.host, before[o.host], options)
                say(f"{o.host}: {back}")
                now = before[o.host] if back.startswith("rolled back") or back.startswith("nothing") else "?"
                state[o.host] = (now, f"FAILED, {back}")
        if failed and 100.0 * len(failed) / len(group) > plan.max_fail:
            stopped = (f"batch {n}: {len(failed)} of {len(group)} board(s) failed "
                       f"(> MAX_FAIL {plan.max_fail:g} %)")
            break
    width = max(len(h) for h in hosts)
    print(f"rollout of release {rel.id} ({rel.bundle_name}): "
          + (f"STOPPED at {stopped}" if stopped else "complete"), flush=True)
    for h in hosts:
        release_id, what = state[h]
        print(f"  {h:<{width}}  {release_id:<12}  {what}", flush=True)
    return 0 if all(state[h][0] == rel.id for h in hosts) else 1


def list_one(spec: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        answer = releases.listing(target, board.home)
    finally:
        target.close()
    say(releases.render(answer, target.name))
    return (f"{len(answer['releases'])} release(s), current {answer.get('current')}, "
            f"served {answer.get('served') or '-'}"), answer


def rollback_one(spec: str, release_id: str | None, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        answer = releases.switch(target, board.home, release_id)
    finally:
        target.close()
    return (f"release {answer['release']} active (was {answer.get('previous')}); "
            f"{releases.served_text(answer['served'])}"), answer
