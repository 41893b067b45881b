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

from device.schema import validate

from deploy import budgets, store, table
from deploy.errors import DeployError
from deploy.fleet import say
from deploy.profiles import Profile
from deploy.push import Options, open_board, resolve_profile
from deploy.release import bundle_files, sha256_file
from deploy.target import Target

q = shlex.quote


def _deployed(target: Target, home: str) -> tuple[str, dict]:
    res = target.run(f"cd {q(home + '/current')} && pwd -P && cat release.json", timeout=30)
    if not res.ok:
        raise DeployError(f"{target.name}: nothing deployed yet; run `make deploy HOST=...` first")
    path, _, body = res.stdout.partition("\n")
    return path.strip(), json.loads(body)


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
        except ValueError:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            kept = store.save_rejected(res.stdout, self.host, self.bundle, f"{what}: not JSON (exit {res.code})")
            raise DeployError(f"{self.host}: agent {what} gave no result (exit {res.code}: {tail}); "
                              f"output kept in {kept}") from None
        try:
            validate(doc)
        except ValueError as e:
            kept = store.save_rejected(res.stdout, self.host, self.bundle, f"{what}: {e}")
            raise DeployError(f"{self.host}: agent {what} result fails the schema ({e}); "
                              f"kept in {kept}") from None
        return doc, res.code

    def path(self, name: str) -> str:
        return q(f"{self.release_dir}/{name}")


def _thermal(info_doc: dict) -> dict:
    d = info_doc.get("device", {})
    return {k: d.get(k) for k in ("temperature_c", "throttling", "cpufreq", "load_avg")}


def _bench_models(s: Session, prof: Profile, files: list[str]) -> tuple[dict, int]:
    """One agent call per model, so a passively cooled board can cool down in between."""
    flags = (f"--num_threads {','.join(map(str, prof.threads))} --num_runs {prof.num_runs} "
             f"--warmup_runs {prof.warmup_runs} --min_secs {prof.min_secs} --timeout {prof.timeout_s}"
             + ("" if prof.xnnpack else " --no_xnnpack"))
    doc, code = None, 0
    for i, file in enumerate(files):
        if i and prof.cooldown_s:
            time.sleep(prof.cooldown_s)
        say(f"{s.host}: bench {file} ({i + 1}/{len(files)})")
        part, rc = s.agent(f"bench {s.path(file)} {flags}", f"bench {file}", prof.timeout_s + 120)
        code = max(code, rc)
        if doc is None:
            doc = part
        else:
            for key in ("results", "warnings", "errors"):
                doc[key] += part[key]
            doc["finished_utc"] = part["finished_utc"]
    return doc, code


def _add_accuracy(s: Session, prof: Profile, doc: dict) -> int:
    """Fill each benchmarked model's `accuracy` from the agent's eval on the bundle's eval.npz."""
    code = 0
    for result in doc["results"]:
        if result["status"] != "ok":
            continue
        file = Path(result["model"]["path"]).name
        say(f"{s.host}: eval {file} on eval.npz")
        ev, rc = s.agent(f"eval {s.path(file)} {s.path('eval.npz')} --manifest {s.path('manifest.json')} "
                         f"--num_threads {prof.threads[0]} --timeout {prof.timeout_s}",
                         f"eval {file}", prof.timeout_s + 120)
        code = max(code, rc)
        doc["warnings"] += ev["warnings"]
        doc["errors"] += ev["errors"]
        if ev["results"] and ev["results"][0]["status"] == "ok":
            result["accuracy"] = ev["results"][0]["accuracy"]
    return code


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
        prof = resolve_profile(options, board, spec)
        wanted = prof.variants or list(manifest["variants"])
        unknown = [v for v in wanted if v not in manifest["variants"]]
        if unknown:
            raise DeployError(f"profile {prof.name}: bundle has no variant(s) {', '.join(unknown)}")
        by_file = {manifest["variants"][v]["file"]: v for v in wanted}
        s = Session(target, host, release_dir, board.home + "/venv/bin/python", bundle_name, options.stream)
        info_before, _ = s.agent("info", "info", 120)
        say(f"{host}: benchmarking {', '.join(wanted)} with profile {prof.name} "
            f"(threads {','.join(map(str, prof.threads))}, {prof.num_runs} runs)")
        doc, code = _bench_models(s, prof, list(by_file))
        code = max(code, _add_accuracy(s, prof, doc))
        info_after, _ = s.agent("info", "info", 120)
    finally:
        target.close()

    def variant_of(model: dict) -> str:
        return by_file.get(Path(model["path"]).name, model["name"])

    doc["deploy"] = {"host": host, "spec": spec, "profile": prof.name, "bundle": bundle_name,
                     "release": release.get("id"),
                     "variants": {r["model"]["name"]: variant_of(r["model"]) for r in doc["results"]},
                     "info_before": _thermal(info_before), "info_after": _thermal(info_after)}
    return _keep(doc, host, bundle_name, prof, variant_of, code)


def _keep(doc: dict, host: str, bundle_name: str, prof: Profile, variant_of, code: int) -> tuple[str, dict]:
    """Validate and store the merged result, print the table, then judge failures and budgets."""
    try:
        validate(doc)
    except ValueError as e:
        kept = store.save_rejected(json.dumps(doc), host, bundle_name, str(e))
        raise DeployError(f"{host}: merged result fails the schema ({e}); kept in {kept}") from None
    path = store.save(doc, host, bundle_name)
    say(f"{host}: result stored in {path}\n{table.render(doc, variant_of)}")
    broken = budgets.check(doc, prof.budgets, variant_of)
    for line in broken:
        say(f"{host}: BUDGET BROKEN {line}")
    failed = [r for r in doc["results"] if r["status"] != "ok"]
    if failed or code:
        raise DeployError(f"{host}: {len(failed)} model(s) failed on the board "
                          f"({'; '.join(doc['errors'])[:300]}); result kept in {path}")
    if broken:
        raise DeployError(f"{host}: {len(broken)} budget(s) of profile {prof.name} broken; result in {path}")
    return f"{len(doc['results'])} models, result {path}", {"path": str(path)}
