"""`python -m deploy bench`: run the agent's info, bench and eval on a board and keep the result.

The board must already have the bundle deployed (`make deploy`); bench never ships anything.
The agent's JSON is validated on receipt (device.schema.validate); a document that fails is
kept under results/rejected/ and the board is reported failed.
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from device import params, results
from device.schema import validate

from deploy import budgets, store, table
from deploy.errors import DeployError
from deploy.fleet import say
from deploy.profiles import Profile
from deploy.push import Options, open_board, resolve_profile
from deploy.release import bundle_files
from device.fileio import sha256_file
from deploy.target import Target

q = shlex.quote


def _deployed(target: Target, home: str) -> tuple[str, dict]:
    res = target.run(f"cd {q(home + '/current')} && pwd -P && cat release.json", timeout=30)
    if not res.ok:
        raise DeployError(f"{target.name}: nothing deployed yet; run `make deploy HOST=...` first")
    path, _, body = res.stdout.partition("\n")
    try:
        release = json.loads(body)
        if not isinstance(release, dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise DeployError(f"{target.name}: the deployed release.json is unreadable ({e}); "
                          "run `make deploy HOST=...` again") from None
    return path.strip(), release


@dataclass
class Session:
    """One board's bench run: where the release and the agent are, and how to report."""
    target: Target
    host: str
    release_dir: str
    python: str
    bundle: str
    stream: bool

    def agent(self, args: str, what: str, timeout: float) -> tuple[dict, int]:
        """Run `agent.pyz ARGS --json -`; return its validated JSON document and exit code."""
        command = f"{q(self.python)} {q(self.release_dir + '/agent.pyz')} {args} --json -"
        res = self.target.run(command, timeout=timeout, stream=self.stream)
        try:
            doc = json.loads(res.stdout)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            kept = store.save_rejected(res.stdout, self.host, self.bundle, f"{what}: not JSON (exit {res.code})")
            raise DeployError(f"{self.host}: agent {what} gave no result (exit {res.code}: {tail}); "
                              f"output kept in {kept}", kind="crash") from None
        try:
            validate(doc)
        except ValueError as e:
            kept = store.save_rejected(res.stdout, self.host, self.bundle, f"{what}: {e}")
            raise DeployError(f"{self.host}: agent {what} result fails the schema ({e}); "
                              f"kept in {kept}", kind="crash") from None
        return doc, res.code

    def path(self, name: str) -> str:
        return q(f"{self.release_dir}/{name}")


def _failed_entry(s: Session, file: str, variant: str, sha256: str | None, error: DeployError) -> dict:
    """A model whose agent call gave nothing usable: recorded as failed, like the agent's own."""
    model = {"path": f"{s.release_dir}/{file}", "name": file, "sha256": sha256}
    return results.failed_result(model, variant, error.kind or "crash", str(error))


def _bench_models(s: Session, prof: Profile, files: dict[str, tuple[str, str | None]], info: dict,
                  with_eval: bool) -> tuple[dict, int]:
    """One agent call per model (bench, then accuracy on the eval set in the same call), so a
    passively cooled board can cool down in between and a call that dies costs only its model."""
    flags = " ".join(q(a) for a in params.to_argv(prof.bench))
    flags += f" --manifest {s.path('manifest.json')}" + (f" --eval {s.path('eval.npz')}" if with_eval else "")
    timeout = 2 * prof.bench["timeout"] + 120    # bench child + eval child, plus the agent's own start
    parts, in_order, lost, code = [], [], [], 0
    for i, (file, (variant, sha256)) in enumerate(files.items()):
        if i and prof.bench["cooldown"]:
            time.sleep(prof.bench["cooldown"])
        say(f"{s.host}: bench {file} ({i + 1}/{len(files)})")
        try:
            part, rc = s.agent(f"bench {s.path(file)} {flags}", f"bench {file}", timeout)
        except DeployError as e:
            say(f"{s.host}: bench {file} failed: {e}")
            in_order.append(_failed_entry(s, file, variant, sha256, e))
            lost.append(f"{file}: {e}")
            code = max(code, 1)
            continue
        code = max(code, rc)
        parts.append(part)
        in_order += part["results"]
    doc = results.combine(parts or [dict(info, results=[], warnings=[], errors=[])])
    doc["results"] = in_order
    doc["errors"] += lost
    return doc, code


def bench_one(spec: str, bundle: Path, options: Options) -> tuple[str, dict]:
    manifest, files = bundle_files(bundle)
    bundle_name = manifest.get("name", bundle.name)
    target, board = open_board(spec, options)
    try:
        host = target.name
        release_dir, release = _deployed(target, board.home)
        local = {name: sha256_file(path) for name, path in files.items()}
        if any(release.get("files", {}).get(n) != h for n, h in local.items()):
            raise DeployError(f"{host}: the board runs release {release.get('id')} "
                              f"({release.get('bundle')}), not this bundle; run `make deploy` first")
        prof = resolve_profile(options, board, target)
        wanted = prof.variants or list(manifest["variants"])
        unknown = [v for v in wanted if v not in manifest["variants"]]
        if unknown:
            raise DeployError(f"profile {prof.name}: bundle has no variant(s) {', '.join(unknown)}")
        to_run = {manifest["variants"][v]["file"]: (v, local.get(manifest["variants"][v]["file"])) for v in wanted}
        s = Session(target, host, release_dir, board.home + "/venv/bin/python", bundle_name, options.stream)
        info_before, _ = s.agent("info", "info", 120)
        say(f"{host}: benchmarking {', '.join(wanted)} with profile {prof.name} "
            f"(threads {','.join(map(str, prof.threads))}, {prof.bench['num_runs']} runs)")
        doc, code = _bench_models(s, prof, to_run, info_before, with_eval="eval.npz" in files)
        try:
            info_after, _ = s.agent("info", "info", 120)
        except DeployError as e:      # keep what was measured; the board is reported failed below
            say(f"{host}: info after the run failed: {e}")
            doc["errors"].append(f"info after: {e}")
            info_after, code = None, max(code, 1)
    finally:
        target.close()
    doc["deploy"] = {"host": host, "spec": spec, "profile": prof.name, "bundle": bundle_name,
                     "release": release.get("id"), "info_before": results.thermal_facts(info_before),
                     "info_after": results.thermal_facts(info_after)}
    return _keep(doc, host, bundle_name, prof, code)


def _keep(doc: dict, host: str, bundle_name: str, prof: Profile, code: int) -> tuple[str, dict]:
    """Validate and store the merged result, print the table, then judge failures and budgets."""
    try:
        validate(doc)
    except ValueError as e:
        kept = store.save_rejected(json.dumps(doc), host, bundle_name, str(e))
        raise DeployError(f"{host}: merged result fails the schema ({e}); kept in {kept}") from None
    path = store.save(doc, host, bundle_name)
    say(f"{host}: result stored in {path}\n{table.render(doc)}")
    broken = budgets.check(doc, prof.budgets)
    for line in broken:
        say(f"{host}: BUDGET BROKEN {line}")
    failed = results.failed(doc)
    if failed or code:
        what = f"{len(failed)} model(s) failed" if failed else "a step failed"
        raise DeployError(f"{host}: {what} on the board "
                          f"({'; '.join(doc['errors'])[:300]}); result kept in {path}")
    if broken:
        raise DeployError(f"{host}: {len(broken)} budget(s) of profile {prof.name} broken; result in {path}")
    return f"{len(doc['results'])} models, result {path}", {"path": str(path)}
