"""The model search's one door to the boards: `on_board` is the only caller of deploy/'s API.

deploy/measure/bench.py measures a *deployed release*; the search instead measures dozens of throw-away
candidate models, so it must not switch the board's `current` release (the user's deployment
stays as it was). It reuses deploy's connection, preflight, profile choice, runtime install and
agent build, and runs the very same agent, from a scratch directory `<board home>/search/`.
When deploy's API changes, this file is the one to adapt.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from deploy.boards.session import Options
from device.contract.fileio import sha256_file
from device.contract.schema import validate

q = shlex.quote


def bench_settings(profile_bench: dict, threads: int, **overrides) -> dict:
    """Complete agent bench settings (device/contract/params.py) from a profile's, for one thread count and
    one XNNPACK mode (a profile's `both` sweep measures with XNNPACK on, as deployments run)."""
    from device.contract import params

    values = dict(profile_bench, num_threads=[threads], **overrides)
    if values.get("xnnpack") == "both":
        values["xnnpack"] = "on"
    return params.from_mapping(values)


def settings_key(values: dict) -> str:
    """The part of a measurement's cache key that the settings make (cooldown and timeout do not
    change a figure, so they are left out)."""
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()) if k not in ("cooldown", "timeout"))


@dataclass
class BoardRun:
    """What one visit to a board gave: who it is and the figures per file sha256."""
    board: str
    runtime: str                      # the runtime pin the board runs, e.g. ai-edge-litert==2.3.0
    profile: dict                     # name, budgets, bench (every bench setting, device/contract/params.py)
    emulated: bool = False
    bench: dict[str, dict] = field(default_factory=dict)    # sha256 -> p50_us, p99_us, peak_rss_mb, ...
    evals: dict[str, dict] = field(default_factory=dict)    # sha256 -> top1, count (or error)
    bench_calls: int = 0                                     # models benchmarked on the board in this visit


class BoardFailure(Exception):
    """The board could not be reached or used (one line); exit_code 2 for bad input (a profile, a host)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def on_board(spec: str, options: Options, bench: list[Path] = (), settings: dict | None = None,
             evals: list[tuple[Path, Path, Path]] = ()) -> BoardRun:
    """Connect to `spec`, make sure the runtime is there, bench `bench` files with `settings` and
    run on-board eval for (model, eval.npz, manifest.json) triples. With no work: only the board's
    name, runtime and profile (the search needs the profile's budgets before it starts)."""
    from deploy.boards import runtime as runtimes
    from deploy.boards.preflight import check
    from deploy.boards.session import open_board, resolve_profile
    from deploy.errors import DeployError
    from deploy.releases.agent import build_agent
    from device.contract import params

    try:
        target, board = open_board(spec, options)
        try:
            prof = resolve_profile(options, board, target)
            rt = runtimes.choose(board, None if prof.runtime == "auto" else prof.runtime)
            if runtimes.needs_install(board, rt):
                check(target, board, need_runtime=True)
                runtimes.ensure(target, board, rt, log=lambda line: None)
            run = BoardRun(target.name, rt.pin, {"name": prof.name, "budgets": dict(prof.budgets),
                                                 "bench": dict(prof.bench)})
            if not bench and not evals:
                return run
            scratch = f"{board.home}/search"
            agent = _ship(target, scratch, [build_agent()] + list(bench) + [p for job in evals for p in job])
            python = q(board.home + "/venv/bin/python")
            if bench:
                flags = " ".join(q(a) for a in params.to_argv(settings))
                models = " ".join(q(agent[p]) for p in bench)
                doc = _agent(target, f"{python} {q(agent['agent'])} bench {models} {flags} --json -",
                             settings["timeout"] * len(bench) + 120)
                run.emulated = bool(doc["device"].get("emulated"))
                run.bench_calls = len(bench)
                for path, result in zip(bench, doc["results"]):
                    run.bench[sha256_file(path)] = _figures(result)
            for model, eval_set, manifest in evals:
                doc = _agent(target, f"{python} {q(agent['agent'])} eval {q(agent[model])} {q(agent[eval_set])} "
                                     f"--manifest {q(agent[manifest])} --num_threads 1 --json -", prof.bench["timeout"] + 120)
                run.emulated = run.emulated or bool(doc["device"].get("emulated"))
                res = doc["results"][0] if doc["results"] else {"status": "failed", "accuracy": None}
                acc = res.get("accuracy") if res.get("status") == "ok" else None
                run.evals[sha256_file(model)] = ({"top1": acc["top1"], "count": acc["count"]} if acc else
                                                 {"error": "; ".join(doc["errors"])[:200] or "eval failed"})
            return run
        finally:
            target.close()
    except DeployError as e:
        raise BoardFailure(str(e), e.exit_code) from None


def _ship(target, scratch: str, files: list[Path]) -> dict:
    """Copy what the scratch directory lacks, named by content (a re-run sends nothing).
    Returns local path -> remote path, plus 'agent' for the agent."""
    from deploy.errors import DeployError

    names = {}
    for path in files:
        digest = sha256_file(path)
        names[path] = f"{scratch}/{digest[:16]}{''.join(Path(path).suffixes[-1:])}"
    res = target.run(f"mkdir -p {q(scratch)} && ls -1 {q(scratch)}", timeout=60)
    if not res.ok:
        raise DeployError(f"{target.name}: cannot use {scratch}: {res.stderr.strip()[:200]}")
    have = set(res.stdout.split())
    for path, remote in names.items():
        if Path(remote).name in have:
            continue
        target.put(path, remote + ".part")
        moved = target.run(f"mv {q(remote + '.part')} {q(remote)}", timeout=60)
        if not moved.ok:
            raise DeployError(f"{target.name}: cannot place {Path(remote).name}: {moved.stderr.strip()[:200]}")
    names["agent"] = names[files[0]]
    return names


def _agent(target, command: str, timeout: float) -> dict:
    """Run one agent command, return its validated JSON document (a model's failure is in it)."""
    from deploy.errors import DeployError

    res = target.run(command, timeout=timeout)
    try:
        doc = json.loads(res.stdout)
        validate(doc)
    except ValueError as e:
        tail = (res.stderr.strip().splitlines() or [str(e)])[-1]
        raise DeployError(f"{target.name}: the agent gave no usable result (exit {res.code}: {tail[:200]})") from None
    return doc


def _figures(result: dict) -> dict:
    """The few numbers the search decides on, from one model's entry of the agent's result."""
    if result.get("status") != "ok" or not result.get("runs"):
        return {"error": ((result.get("error") or {}).get("message") or "bench failed")[:200]}
    run = result["runs"][0]
    return {"p50_us": run["p50_us"], "p99_us": run["p99_us"],
            "peak_rss_mb": (result.get("memory") or {}).get("peak_rss_mb"),
            "ops_total": result["model"].get("ops_total"), "ops_delegated": result["model"].get("ops_delegated")}


def parse_hosts(host: str | None, hosts: str | None) -> list[str]:
    """HOST= or HOSTS=a,b,c / @fleet.txt, read exactly as deploy reads them."""
    from deploy.boards.session import parse_hosts as deploy_hosts
    from deploy.errors import DeployError

    try:
        return deploy_hosts(host, hosts)
    except DeployError as e:
        raise BoardFailure(str(e), e.exit_code) from None
