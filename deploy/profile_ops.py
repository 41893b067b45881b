"""`python -m deploy profile`: the agent's per-operator profile of the bundle's variants on a board.

Like bench (and through the same Session): the bundle must be deployed, every document the
agent returns is validated, and the merged result is stored as
results/<host>/<UTC>-<bundle>-profile.json, never overwriting an earlier one. One agent call per
variant; the profile's first thread count and its XNNPACK setting ("both" profiles with it on).
A board whose runtime lacks the flatbuffer schema (tflite-runtime) gets its pieces cut here and
shipped to a temporary directory on the board (`--cut-on-host` forces that path).
"""
from __future__ import annotations

import json
import shlex
import tempfile
import time
from pathlib import Path

from device import results
from device.fileio import sha256_file
from device.schema import validate

from deploy import store
from deploy.bench import Session, _deployed
from deploy.errors import DeployError, UsageError
from deploy.fleet import say
from deploy.push import Options, open_board, resolve_profile
from deploy.release import bundle_files

q = shlex.quote


def _flags(bench: dict, s: Session) -> str:
    flags = [f"--num_threads {int(bench['num_threads'][0])}", f"--num_runs {int(bench['num_runs'])}",
             f"--warmup_runs {int(bench['warmup_runs'])}", f"--timeout {float(bench['timeout']):g}",
             f"--manifest {s.path('manifest.json')}"]
    if bench.get("xnnpack") == "off":
        flags.append("--no_xnnpack")
    return " ".join(flags)


def _render(doc: dict) -> str:
    from device.profile_view import render
    from device.report import _table
    out = []
    if doc["device"].get("emulated"):
        out.append(f"EMULATED ({doc['device'].get('emulator') or 'qemu'}): these latencies are not a board's; "
                   "the graph facts and the memory plan are")
    for r in doc["results"]:
        if r["status"] == "ok":
            out.append(f"{r['variant']} ({r['model']['name']}):\n{render(r, _table)}")
        else:
            out.append(f"{r['variant']}: FAILED {r['error']['message']}")
    return "\n".join(out)


_HAS_SCHEMA = ("ai_edge_litert", "tensorflow")   # runtimes that ship the flatbuffer schema


def _ship_pieces(s: Session, home: str, model: Path, sha256: str, tmp: Path) -> str:
    """Cut `model` here and put the pieces on the board; returns the remote directory."""
    from device import flatmodel, pieces
    local = tmp / sha256[:12]
    try:
        pieces.prepare(flatmodel.read(str(model)), str(local), sha256)
    except Exception as exc:
        raise DeployError(f"cannot cut {model.name} on the host: {exc}") from None
    remote = f"{home}/tmp/pieces-{sha256[:12]}"
    res = s.target.run(f"rm -rf {q(remote)} && mkdir -p {q(remote)}", timeout=60)
    if not res.ok:
        raise DeployError(f"{s.host}: cannot create {remote} on the board")
    for f in sorted(local.iterdir()):
        s.target.put(f, f"{remote}/{f.name}")
    return remote


def check_variant(bundle: Path, variant: str | None) -> None:
    manifest, _ = bundle_files(bundle)
    if variant and variant not in manifest["variants"]:
        raise UsageError(f"bundle {manifest.get('name', bundle.name)} has no variant {variant!r} "
                         f"(it has {', '.join(manifest['variants'])})")


def profile_one(spec: str, bundle: Path, options: Options, variant: str | None = None,
                cut_on_host: bool = False) -> tuple[str, dict]:
    manifest, files = bundle_files(bundle)
    bundle_name = manifest.get("name", bundle.name)
    check_variant(bundle, variant)
    target, board = open_board(spec, options)
    try:
        host = target.name
        release_dir, release = _deployed(target, board.home)
        local = {name: sha256_file(path) for name, path in files.items()}
        if any(release.get("files", {}).get(n) != h for n, h in local.items()):
            raise DeployError(f"{host}: the board runs release {release.get('id')} "
                              f"({release.get('bundle')}), not this bundle; run `make deploy` first")
        prof = resolve_profile(options, board, target)
        wanted = [variant] if variant else (prof.variants or list(manifest["variants"]))
        s = Session(target, host, release_dir, board.home + "/venv/bin/python", bundle_name, options.stream)
        info_before, _ = s.agent("info", "info", 120)
        flags = _flags(prof.bench, s)
        board_runtime = (info_before.get("runtime") or {}).get("name")
        if board_runtime not in _HAS_SCHEMA and not cut_on_host:
            say(f"{host}: the board's runtime ({board_runtime}) cannot cut models: cutting on the host")
            cut_on_host = True
        parts, in_order, lost, code = [], [], [], 0
        for i, v in enumerate(wanted):
            file = manifest["variants"][v]["file"]
            if i and prof.bench["cooldown"]:
                time.sleep(prof.bench["cooldown"])
            say(f"{host}: profile {file} ({i + 1}/{len(wanted)})")
            remote = None
            try:
                extra = ""
                if cut_on_host:
                    with tempfile.TemporaryDirectory(prefix="edgekit-pieces-") as tmp:
                        remote = _ship_pieces(s, board.home, files[file], local[file], Path(tmp))
                    extra = f" --pieces {q(remote)}"
                part, rc = s.agent(f"profile {s.path(file)} {flags}{extra}", f"profile {file}",
                                   prof.bench["timeout"] + 120)
            except DeployError as e:
                say(f"{host}: profile {file} failed: {e}")
                model = {"path": f"{release_dir}/{file}", "name": file, "sha256": local.get(file)}
                in_order.append(results.failed_result(model, v, e.kind or "crash", str(e)))
                lost.append(f"{file}: {e}")
                code = max(code, 1)
                continue
            finally:
                if remote:
                    s.target.run(f"rm -rf {q(remote)}", timeout=60)
            code = max(code, rc)
            parts.append(part)
            in_order += part["results"]
        info_after, _ = s.agent("info", "info", 120)
    finally:
        target.close()
    doc = results.combine(parts or [dict(info_before, results=[], warnings=[], errors=[])], command="profile")
    doc["results"], doc["errors"] = in_order, doc["errors"] + lost
    doc["deploy"] = {"host": host, "spec": spec, "profile": prof.name, "bundle": bundle_name,
                     "release": release.get("id"), "info_before": results.thermal_facts(info_before),
                     "info_after": results.thermal_facts(info_after)}
    try:
        validate(doc)
    except ValueError as e:
        kept = store.save_rejected(json.dumps(doc), host, bundle_name, str(e))
        raise DeployError(f"{host}: merged profile fails the schema ({e}); kept in {kept}") from None
    path = store.save(doc, host, f"{bundle_name}-profile")
    say(f"{host}: profile stored in {path}\n{_render(doc)}")
    if results.failed(doc) or code:
        raise DeployError(f"{host}: profiling failed on the board ({'; '.join(doc['errors'])[:300]}); "
                          f"result kept in {path}")
    return f"{len(doc['results'])} variant(s), profile {path}", {"path": str(path)}
