"""The subcommands, each run over every board given (in parallel for fleets), and `COMMANDS`,
the one table the command line is built from (name -> function, help)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Callable

from deploy.boards import fleet, profiles
from deploy.boards.session import Options, bundle_path
from deploy.errors import UsageError
from deploy.releases import ship as releases
from deploy.releases.agent import build_agent
from deploy.releases.push import push_one


def options_from(args: argparse.Namespace) -> Options:
    if args.profile:
        profiles.load(args.profile)  # a typo in PROFILE fails here, before any board is contacted
    from deploy.boards.extras import parse_extras
    from deploy.boards.runtime import parse_runtimes
    return Options(ssh_key=args.ssh_key, trust_new_host=args.trust_new_host, profile=args.profile,
                   force_wheelhouse=getattr(args, "wheelhouse", False), keep=getattr(args, "keep", 3),
                   runtimes=parse_runtimes(getattr(args, "runtimes", None)),
                   extras=parse_extras(getattr(args, "extras", None)))


def push(args: argparse.Namespace, hosts: list[str]) -> int:
    rel = releases.prepare(bundle_path(args.bundle), build_agent(args.agent))
    options = options_from(args)
    if args.rollout:
        from deploy.releases.rollout import Plan, rollout
        return rollout(hosts, rel, bundle_path(args.bundle), options,
                       Plan(args.rollout, args.batch or (len(hosts) if args.rollout == "canary" else 1),
                            args.max_fail))
    outcomes = fleet.run_all(hosts, lambda h: push_one(h, rel, options))
    fleet.print_summary(outcomes, "deploy")
    return 0 if all(o.ok for o in outcomes) else 1


def _on_boards(args: argparse.Namespace, hosts: list[str], what: str, work) -> int:
    """Measure on every board (results/ as asked); one board's failure stays with that board."""
    if args.results:
        os.environ["EDGEKIT_RESULTS"] = args.results
    options = options_from(args)
    options.stream = len(hosts) == 1
    outcomes = fleet.run_all(hosts, lambda h: work(h, options))
    fleet.print_summary(outcomes, what)
    return 0 if all(o.ok for o in outcomes) else 1


def bench(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.measure.bench import bench_one
    bundle = bundle_path(args.bundle)
    video = getattr(args, "video", None)
    if video and not os.path.isfile(video):
        raise UsageError(f"--video {video}: no such file")
    return _on_boards(args, hosts, "bench", lambda h, options: bench_one(h, bundle, options, video))


def profile(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.measure.profile import check_variant, profile_one
    bundle = bundle_path(args.bundle)
    check_variant(bundle, args.variant)       # bad input: refused before any board is touched
    return _on_boards(args, hosts, "profile",
                      lambda h, options: profile_one(h, bundle, options, args.variant, args.cut_on_host))


def serve(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.service.launch import serve_one
    bundle_path(args.bundle)
    options = options_from(args)
    outcomes = fleet.run_all(hosts, lambda h: serve_one(h, args.variant, args.port, args.bind, options))
    fleet.print_summary(outcomes, "serve")
    return 0 if all(o.ok for o in outcomes) else 1


def stop(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.service.launch import stop_one
    outcomes = fleet.run_all(hosts, lambda h: stop_one(h, options_from(args)))
    fleet.print_summary(outcomes, "stop")
    return 0 if all(o.ok for o in outcomes) else 1


def list_releases(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.releases.rollout import list_one
    outcomes = fleet.run_all(hosts, lambda h: list_one(h, options_from(args)))
    fleet.print_summary(outcomes, "releases")
    return 0 if all(o.ok for o in outcomes) else 1


def rollback(args: argparse.Namespace, hosts: list[str]) -> int:
    from deploy.releases.manage import check_id
    from deploy.releases.rollout import rollback_one
    check_id(args.release)          # a malformed id is a usage error before any board is contacted
    outcomes = fleet.run_all(hosts, lambda h: rollback_one(h, args.release, options_from(args)))
    fleet.print_summary(outcomes, "rollback")
    return 0 if all(o.ok for o in outcomes) else 1


@dataclass(frozen=True)
class Command:
    run: Callable[[argparse.Namespace, list[str]], int]     # (parsed arguments, hosts) -> exit code
    help: str


COMMANDS: dict[str, Command] = {
    "push": Command(push, "ship runtime, agent and bundle to the board(s)"),
    "bench": Command(bench, "run info/bench/eval on the board(s), store results/<host>/...json"),
    "profile": Command(profile, "per-operator latency and memory plan on the board(s), "
                                "store results/<host>/...-profile.json"),
    "serve": Command(serve, "start the agent's HTTP server on the board"),
    "stop": Command(stop, "stop a server started by serve"),
    "releases": Command(list_releases, "list the releases on the board(s): current, served, size"),
    "rollback": Command(rollback, "switch back to the previous (or a named) release; the service follows"),
}
