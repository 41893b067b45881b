"""The toolkit's own deploy figures (for `make perf`): first deploy, re-deploy, fleet wall time.

`python -m host.perf.deploy [--bundle artifacts/NAME] [--boards 4] [--json OUT]` starts N throwaway
loopback boards (a real sshd each, on 127.0.0.1, needs root and openssh-server; helper in
emuboard/loopback.py) and prints the figures. Everything runs in temp dirs: the real ~/.ssh and
~/.edgekit are not touched. `measure(...)` is the same as a function for host/perf.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from deploy.boards import fleet
from deploy.boards.session import Options
from deploy.errors import DeployError
from deploy.releases import ship as releases
from deploy.releases.agent import build_agent
from deploy.releases.push import push_one
from deploy.settings import REPO


def _quietly(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _push(hosts: list[str], rel, options: Options) -> tuple[float, list[fleet.Outcome]]:
    start = time.monotonic()
    outcomes = _quietly(fleet.run_all, hosts, lambda h: push_one(h, rel, options))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise DeployError(f"perf: deploy failed: {failed[0].detail}")
    return time.monotonic() - start, outcomes


def _bench(hosts: list[str], bundle: Path, options: Options) -> float:
    from deploy.measure.bench import bench_one
    start = time.monotonic()
    outcomes = _quietly(fleet.run_all, hosts, lambda h: bench_one(h, bundle, options))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise DeployError(f"perf: bench failed: {failed[0].detail}")
    return time.monotonic() - start


def _spread(values: list[float]) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3), "n": len(values)}


PERF_PROFILE = "name: perf\narch: [x86_64, aarch64]\nthreads: [1]\nnum_runs: 20\nwarmup_runs: 2\n"


def measure(bundle: Path | None = None, boards: int = 4, agent: str | None = None, repeats: int = 3) -> dict:
    """Figures on loopback boards; runtime installed once, shared by the other boards' venvs.

    first deploy (runtime + release), re-deploy with nothing changed, a changed release pushed to
    1 vs `boards` boards, and bench on 1 vs `boards` boards (a light profile: 1 thread, 20 runs)."""
    from emuboard import loopback as sshd
    bundle = Path(bundle) if bundle else REPO / "artifacts" / "mnist5k"
    if not (bundle / "manifest.json").is_file():
        raise DeployError(f"perf: no bundle at {bundle}")
    reason = sshd.unavailable_reason()
    if reason:
        raise DeployError(f"perf: loopback boards unavailable: {reason}")
    work = Path(tempfile.mkdtemp(prefix="edgekit-perf-"))
    saved = {k: os.environ.get(k) for k in ("HOME", "EDGEKIT_HOME", "EDGEKIT_RESULTS")}
    servers = []
    try:
        agent_path = build_agent(agent)     # before HOME moves: reuse the real agent cache
        os.environ.update(HOME=str(work / "client"), EDGEKIT_HOME=str(work / "client" / ".edgekit"),
                          EDGEKIT_RESULTS=str(work / "results"))
        client = work / "client" / ".edgekit"
        client.mkdir(parents=True)
        names = []
        for i in range(boards):
            home = work / f"board{i}"
            if i:
                home.mkdir()
                os.symlink(work / "board0" / "venv", home / "venv")
            s = sshd.start(work / f"sshd{i}", board_home=home)
            servers.append(s)
            with open(client / "known_hosts", "a") as f:
                f.write(s.host_key_line + "\n")
            with open(client / "ssh_config", "a") as f:
                f.write(f"Host b{i}\n  HostName 127.0.0.1\n  Port {s.port}\n  User root\n"
                        f"  IdentityFile {s.client_key}\n")
            names.append(f"b{i}")
        rel = releases.prepare(bundle, agent_path)
        options = Options()
        first_s, [first] = _push(names[:1], rel, options)
        again = [_push(names[:1], rel, options) for _ in range(repeats)]
        figures = {"boards": boards, "bundle": str(bundle), "cpu_count": os.cpu_count(),
                   "release_bytes": sum(p.stat().st_size for p in rel.files.values()),
                   "first_deploy_s": round(first_s, 2), "first_deploy_bytes": first.data["bytes_sent"],
                   "first_deploy_runtime": first.data["runtime"],
                   "redeploy_s": _spread([t for t, _ in again]),
                   "redeploy_bytes": max(o[0].data["bytes_sent"] for _, o in again)}
        # a changed release (only manifest.json differs) to 1 board, then to all boards at once
        changed = work / "changed"
        shutil.copytree(bundle, changed)
        m = json.loads((changed / "manifest.json").read_text())
        for n in (1, boards):
            times = []
            for r in range(repeats):
                m["created_utc"] = f"perf-{n}-{r}"
                (changed / "manifest.json").write_text(json.dumps(m))
                times.append(_push(names[:n], releases.prepare(changed, agent_path), options)[0])
            figures[f"push_{n}_boards_s"] = _spread(times)
        _push(names, rel, options)
        (work / "perf.yaml").write_text(PERF_PROFILE)
        options = Options(profile=str(work / "perf.yaml"))
        for n in (1, boards):
            figures[f"bench_{n}_boards_s"] = _spread([_bench(names[:n], bundle, options) for _ in range(repeats)])
        one, many = figures["bench_1_boards_s"]["median"], figures[f"bench_{boards}_boards_s"]["median"]
        figures["bench_wall_ratio"] = round(many / one, 2)
        figures["render"] = render(figures)
        return figures
    finally:
        for s in servers:
            s.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)


def render(f: dict) -> str:
    n = f["boards"]
    return "\n".join([
        f"deploy to a loopback sshd board ({f['release_bytes']} bytes in the release)",
        f"  first deploy {f['first_deploy_s']:.2f} s, {f['first_deploy_bytes']} bytes "
        f"(runtime via {f['first_deploy_runtime']['via']})",
        f"  re-deploy, nothing changed: median {f['redeploy_s']['median']:.2f} s, {f['redeploy_bytes']} bytes sent",
        f"fleet on {n} loopback boards sharing {f['cpu_count']} CPUs",
        f"  push changed release: 1 board {f['push_1_boards_s']['median']:.2f} s, "
        f"{n} boards {f[f'push_{n}_boards_s']['median']:.2f} s",
        f"  bench: 1 board {f['bench_1_boards_s']['median']:.2f} s, {n} boards "
        f"{f[f'bench_{n}_boards_s']['median']:.2f} s (ratio {f['bench_wall_ratio']:.2f}; 1.0 = perfectly parallel)"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m host.perf.deploy", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="default artifacts/mnist5k")
    p.add_argument("--boards", type=int, default=4)
    p.add_argument("--agent")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    try:
        figures = measure(args.bundle, args.boards, args.agent, args.repeats)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = json.dumps(figures, indent=1)
    print(figures["render"])
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
