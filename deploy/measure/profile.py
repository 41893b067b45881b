"""`python -m deploy profile`: the agent's per-operator profile of the bundle's variants on a board.

Like bench (and through the same Session): the bundle must be deployed, every document the
agent returns is validated, and the merged result is stored as
results/<host>/<UTC>-<bundle>-profile.json, never overwriting an earlier one. One agent call per
variant; the profile's first thread count and its XNNPACK setting ("both" profiles with it on).
A board whose runtime lacks the flatbuffer schema (tflite-runtime) gets its pieces cut here and
shipped to a temporary directory on the board (`--cut-on-host` forces that path).
"""
from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

from deploy.boards.fleet import say
from deploy.boards.session import Options
from deploy.errors import DeployError, UsageError
from deploy.measure.bench import Session, deployed, info_after, per_model, store_result
from deploy.releases.ship import bundle_files
from device.contract import params, results

q = shlex.quote


def _flags(bench: dict, s: Session) -> str:
    """The profile's settings the agent's `profile` takes: its first thread count, runs, timeout."""
    flags = [f"--num_threads {int(bench['num_threads'][0])}", f"--manifest {s.path('manifest.json')}"]
    flags += [q(a) for a in params.to_argv(bench, ("num_runs", "warmup_runs", "timeout"))]
    if bench.get("xnnpack") == "off":
        flags.append("--no_xnnpack")
    return " ".join(flags)


def _render(doc: dict) -> str:
    from device.profiling.view import render
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
    from device.profiling import flatmodel, pieces
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
    if variant and manifest["variants"][variant].get("runtime"):
        raise UsageError(f"variant {variant} runs on {manifest['variants'][variant]['runtime']}: per-operator "
                         "profiles are for the .tflite variants")


def profile_one(spec: str, bundle: Path, options: Options, variant: str | None = None,
                cut_on_host: bool = False) -> tuple[str, dict]:
    check_variant(bundle, variant)
    with deployed(spec, bundle, options) as d:
        prof, s = d.prof, d.session
        tflite = [v for v, e in d.manifest["variants"].items() if not e.get("runtime")]   # not ORT's .onnx
        models = d.variant_files([variant] if variant else [v for v in (prof.variants or tflite) if v in tflite])
        info_before, _ = s.agent("info", "info", 120)
        flags = _flags(prof.bench, s)
        board_runtime = (info_before.get("runtime") or {}).get("name")
        if board_runtime not in _HAS_SCHEMA and not cut_on_host:
            say(f"{d.host}: the board's runtime ({board_runtime}) cannot cut models: cutting on the host")
            cut_on_host = True
        shipped: list[str] = []

        def args_for(file: str) -> str:
            if not cut_on_host:
                return f"profile {s.path(file)} {flags}"
            with tempfile.TemporaryDirectory(prefix="edgekit-pieces-") as tmp:
                shipped.append(_ship_pieces(s, d.home, d.files[file], d.hashes[file], Path(tmp)))
            return f"profile {s.path(file)} {flags} --pieces {q(shipped[-1])}"

        try:
            calls = per_model(d, models, args_for, prof.bench["timeout"] + 120, "profile")
        finally:
            for remote in shipped:
                s.target.run(f"rm -rf {q(remote)}", timeout=60)
        after = info_after(d, calls)
    doc, path = store_result(d, calls, info_before, after, "profile", suffix="-profile")
    say(f"{d.host}: profile stored in {path}\n{_render(doc)}")
    if results.failed(doc) or calls.code:
        raise DeployError(f"{d.host}: profiling failed on the board ({'; '.join(doc['errors'])[:300]}); "
                          f"result kept in {path}")
    return f"{len(doc['results'])} variant(s), profile {path}", {"path": str(path)}
