"""`python -m deploy bench`: run the agent's info, bench and eval on a board and keep the result.

The board must already have the bundle deployed (`make deploy`); bench never ships anything.
The agent's JSON is validated on receipt (device.contract.schema.validate); a document that fails is
kept under results/rejected/ and the board is reported failed.
"""
from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from deploy.boards import budgets
from deploy.boards.fleet import say
from deploy.boards.profiles import Profile
from deploy.boards.session import Options, open_board, resolve_profile
from deploy.errors import DeployError, UsageError
from deploy.measure import store, table
from deploy.releases.ship import bundle_files
from deploy.targets.base import Target
from device.contract import params, results
from device.contract.fileio import sha256_file
from device.contract.schema import validate

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


@dataclass
class Deployed:
    """A board whose active release is this bundle's, ready for agent calls (bench, profile)."""
    spec: str
    session: Session
    home: str                       # the board's edgekit directory
    release: dict
    manifest: dict
    files: dict[str, Path]          # bundle file name -> local path
    hashes: dict[str, str]          # bundle file name -> sha256
    prof: Profile

    @property
    def host(self) -> str:
        return self.session.host

    def variant_files(self, variants: list[str]) -> list[tuple[str, str]]:
        """(file, variant) per wanted variant; an unknown variant is bad input."""
        unknown = [v for v in variants if v not in self.manifest["variants"]]
        if unknown:
            raise UsageError(f"bundle {self.session.bundle} has no variant(s) {', '.join(unknown)} "
                             f"(it has {', '.join(self.manifest['variants'])})")
        return [(self.manifest["variants"][v]["file"], v) for v in variants]


@contextmanager
def deployed(spec: str, bundle: Path, options: Options) -> Iterator[Deployed]:
    """Connect, check that the board runs exactly this bundle, pick the profile; close at the end."""
    manifest, files = bundle_files(bundle)
    target, board = open_board(spec, options)
    try:
        release_dir, release = _deployed(target, board.home)
        hashes = {name: sha256_file(path) for name, path in files.items()}
        if any(release.get("files", {}).get(n) != h for n, h in hashes.items()):
            raise DeployError(f"{target.name}: the board runs release {release.get('id')} "
                              f"({release.get('bundle')}), not this bundle; run `make deploy` first")
        session = Session(target, target.name, release_dir, board.home + "/venv/bin/python",
                          manifest.get("name", bundle.name), options.stream)
        yield Deployed(spec, session, board.home, release, manifest, files, hashes, resolve_profile(options, board, target))
    finally:
        target.close()


@dataclass
class Calls:
    """What one agent call per model gave: the documents, every model's entry in run order,
    the lost calls' messages and the worst exit code."""
    parts: list[dict]
    in_order: list[dict]
    lost: list[str]
    code: int


def per_model(d: Deployed, models: list[tuple[str, str]], args_for: Callable[[str], str], timeout: float,
              what: str) -> Calls:
    """One agent call per model, with the profile's cool-down in between: a call that dies (agent
    killed, link lost, timeout) is that model's failure; the models before and after are kept."""
    calls = Calls([], [], [], 0)
    s = d.session
    for i, (file, variant) in enumerate(models):
        if i and d.prof.bench["cooldown"]:
            time.sleep(d.prof.bench["cooldown"])
        say(f"{d.host}: {what} {file} ({i + 1}/{len(models)})")
        try:
            part, rc = s.agent(args_for(file), f"{what} {file}", timeout)
        except DeployError as e:
            say(f"{d.host}: {what} {file} failed: {e}")
            model = {"path": f"{s.release_dir}/{file}", "name": file, "sha256": d.hashes.get(file)}
            calls.in_order.append(results.failed_result(model, variant, e.kind or "crash", str(e)))
            calls.lost.append(f"{file}: {e}")
            calls.code = max(calls.code, 1)
            continue
        calls.code = max(calls.code, rc)
        calls.parts.append(part)
        for res in part["results"]:          # rows keyed by runtime when one run holds several
            res.setdefault("runtime", (part.get("runtime") or {}).get("name"))
        calls.in_order += part["results"]
    return calls


def store_result(d: Deployed, calls: Calls, info_before: dict, info_after: dict | None, command: str,
                 suffix: str = "") -> tuple[dict, Path]:
    """Join the calls into one document with its `deploy` block, validate and store it (never
    overwriting); a document that fails the schema is kept under results/rejected/ instead."""
    doc = results.combine(calls.parts or [dict(info_before, results=[], warnings=[], errors=[])], command)
    doc["results"], doc["errors"] = calls.in_order, doc["errors"] + calls.lost
    doc["deploy"] = {"host": d.host, "spec": d.spec, "profile": d.prof.name, "bundle": d.session.bundle,
                     "release": d.release.get("id"), "info_before": results.thermal_facts(info_before),
                     "info_after": results.thermal_facts(info_after)}
    name = d.session.bundle + suffix
    try:
        validate(doc)
    except ValueError as e:
        kept = store.save_rejected(json.dumps(doc), d.host, name, str(e))
        raise DeployError(f"{d.host}: merged {command} result fails the schema ({e}); kept in {kept}") from None
    return doc, store.save(doc, d.host, name)


def info_after(d: Deployed, calls: Calls) -> dict | None:
    """`agent info` after the run; if it fails, what was measured is kept and the board fails."""
    try:
        return d.session.agent("info", "info", 120)[0]
    except DeployError as e:
        say(f"{d.host}: info after the run failed: {e}")
        calls.lost.append(f"info after: {e}")
        calls.code = max(calls.code, 1)
        return None


def _ship_video(d: Deployed, video: str) -> str:
    """The clip on the board under <home>/media/ (named by its content, so it is sent once)."""
    local = Path(video)
    remote = f"{d.home}/media/{sha256_file(local)[:12]}-{local.name}"
    if not d.session.target.run(f"test -f {q(remote)}", timeout=30).ok:
        d.session.target.run(f"mkdir -p {q(d.home + '/media')}", timeout=30)
        d.session.target.put(local, remote)
    return remote




def by_runtime(d: Deployed, models: list[tuple[str, str]], wanted: tuple, info: dict) -> tuple[list, dict]:
    """The variants to bench and each file's --runtime flag. A variant names its runtime in the
    manifest (ONNX Runtime's ort_* variants); the others run on the board's TFLite runtime. With
    RUNTIMES= only those runtimes' variants run; without it, ONNX variants run where the board has
    ONNX Runtime and are skipped, said in one line, where it does not."""
    from deploy.boards.runtime import ADDED_RUNTIMES, TFLITE_NAMES

    has = {r.get("name") for r in (info.get("device") or {}).get("runtimes_available") or []}
    added = {r.name for r in ADDED_RUNTIMES}
    keep, flags, skipped = [], {}, []
    for file, variant in models:
        name = d.manifest["variants"][variant].get("runtime")
        if name in added:
            if (wanted and name not in wanted) or (not wanted and name not in has):
                skipped.append(variant)
                continue
            if name not in has:
                raise DeployError(f"{d.host}: RUNTIMES= asks for {name} but the board has none; "
                                  f"deploy with RUNTIMES={','.join(wanted)} first")
            flags[file] = f" --runtime {q(name)}"
        elif wanted and not set(wanted) & set(TFLITE_NAMES):
            skipped.append(variant)
            continue
        else:
            flags[file] = ""
        keep.append((file, variant))
    if skipped:
        why = "not in RUNTIMES=" if wanted else "the board has no ONNX Runtime (deploy with RUNTIMES=litert,onnxruntime)"
        say(f"{d.host}: skipping {', '.join(skipped)}: {why}")
    if not keep:
        raise UsageError(f"bundle {d.session.bundle} has no variant for RUNTIMES={','.join(wanted)}")
    return keep, flags


def bench_one(spec: str, bundle: Path, options: Options, video: str | None = None) -> tuple[str, dict]:
    with deployed(spec, bundle, options) as d:
        prof, s = d.prof, d.session
        models = d.variant_files(prof.variants or list(d.manifest["variants"]))
        info_before, _ = s.agent("info", "info", 120)
        models, runtime_of = by_runtime(d, models, options.runtimes, info_before)
        say(f"{d.host}: benchmarking {', '.join(v for _, v in models)} with profile {prof.name} "
            f"(threads {','.join(map(str, prof.threads))}, {prof.bench['num_runs']} runs)")
        # bench, then accuracy on the eval set in the same call, so each entry arrives whole
        flags = " ".join(q(a) for a in params.to_argv(prof.bench)) + f" --manifest {s.path('manifest.json')}"
        if "eval.npz" in d.files:
            flags += f" --eval {s.path('eval.npz')}"
        if video:       # the frame pipeline end to end, per thread count (the result's end_to_end)
            flags += f" --source {q('video:' + _ship_video(d, video))}"
        calls = per_model(d, models, lambda file: f"bench {s.path(file)} {flags}{runtime_of[file]}",
                          2 * prof.bench["timeout"] + 120, "bench")   # bench child + eval child + start-up
        after = info_after(d, calls)
    doc, path = store_result(d, calls, info_before, after, "bench")
    return _judge(doc, path, d.host, prof, calls.code)


def _judge(doc: dict, path: Path, host: str, prof: Profile, code: int) -> tuple[str, dict]:
    """Print the table, then judge failures and budgets."""
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
