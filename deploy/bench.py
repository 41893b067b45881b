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


def _thermal_facts(info_doc: dict | None) -> dict:
    """The few `agent info` fields stored with a result (table.render prints them)."""
    d = (info_doc or {}).get("device", {})
    return {k: d.get(k) for k in ("temperature_c", "throttling", "cpufreq", "load_avg")}


def _failed_entry(s: Session, file: str, sha256: str | None, error: DeployError) -> dict:
    """A model whose agent call gave nothing usable: recorded as failed, like the agent's own."""
    return {"model": {"path": f"{s.release_dir}/{file}", "name": file, "sha256": sha256,
                      "size_bytes": None, "ops_total": None, "ops_delegated": None},
            "status": "failed", "runs": [], "memory": None, "accuracy": None, "warnings": [],
            "error": {"kind": error.kind or "crash", "message": str(error), "signal": None}}


def _bench_models(s: Session, prof: Profile, files: dict[str, str | None], info: dict) -> tuple[dict, int]:
    """One agent call per model, so a passively cooled board can cool down in between.
    A call that fails is that model's failure: the models measured before and after are kept."""
    flags = (f"--num_threads {','.join(map(str, prof.threads))} --num_runs {prof.num_runs} "
             f"--warmup_runs {prof.warmup_runs} --min_secs {prof.min_secs} --timeout {prof.timeout_s}"
             + ("" if prof.xnnpack else " --no_xnnpack"))
    doc, code = None, 0
    merged = {"results": [], "warnings": [], "errors": []}
    for i, (file, sha256) in enumerate(files.items()):
        if i and prof.cooldown_s:
            time.sleep(prof.cooldown_s)
        say(f"{s.host}: bench {file} ({i + 1}/{len(files)})")
        try:
            part, rc = s.agent(f"bench {s.path(file)} {flags}", f"bench {file}", prof.timeout_s + 120)
        except DeployError as e:
            say(f"{s.host}: bench {file} failed: {e}")
            merged["results"].append(_failed_entry(s, file, sha256, e))
            merged["errors"].append(f"{file}: {e}")
            code = max(code, 1)
            continue
        code = max(code, rc)
        doc = doc or part
        for key in merged:
            merged[key] += part[key]
        doc["finished_utc"] = part["finished_utc"]
    if doc is None:       # no model gave a document: the info document carries agent/device/runtime
        doc = dict(info, command="bench")
    doc.update(merged)
    return doc, code


def _add_accuracy(s: Session, prof: Profile, doc: dict) -> int:
    """Fill each benchmarked model's `accuracy` from the agent's eval on the bundle's eval.npz."""
    code = 0
    for result in doc["results"]:
        if result["status"] != "ok":
            continue
        file = Path(result["model"]["path"]).name
        say(f"{s.host}: eval {file} on eval.npz")
        try:
            ev, rc = s.agent(f"eval {s.path(file)} {s.path('eval.npz')} --manifest {s.path('manifest.json')} "
                             f"--num_threads {prof.threads[0]} --timeout {prof.timeout_s}",
                             f"eval {file}", prof.timeout_s + 120)
        except DeployError as e:       # the measurement stays; the board is still reported failed
            say(f"{s.host}: eval {file} failed: {e}")
            doc["errors"].append(f"eval {file}: {e}")
            code = max(code, 1)
            continue
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
        doc, code = _bench_models(s, prof, {f: local.get(f) for f in by_file}, info_before)
        if manifest.get("eval"):       # a bundle without an eval set (bench only) has no accuracy
            code = max(code, _add_accuracy(s, prof, doc))
        try:
            info_after, _ = s.agent("info", "info", 120)
        except DeployError as e:      # keep what was measured; the board is reported failed below
            say(f"{host}: info after the run failed: {e}")
            doc["errors"].append(f"info after: {e}")
            info_after, code = None, max(code, 1)
    finally:
        target.close()

    def variant_of(model: dict) -> str:
        return by_file.get(Path(model["path"]).name, model["name"])

    doc["deploy"] = {"host": host, "spec": spec, "profile": prof.name, "bundle": bundle_name,
                     "release": release.get("id"),
                     "variants": {r["model"]["name"]: variant_of(r["model"]) for r in doc["results"]},
                     "info_before": _thermal_facts(info_before),
                     "info_after": _thermal_facts(info_after)}
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
        what = f"{len(failed)} model(s) failed" if failed else "a step failed"
        raise DeployError(f"{host}: {what} on the board "
                          f"({'; '.join(doc['errors'])[:300]}); result kept in {path}")
    if broken:
        raise DeployError(f"{host}: {len(broken)} budget(s) of profile {prof.name} broken; result in {path}")
    return f"{len(doc['results'])} models, result {path}", {"path": str(path)}
