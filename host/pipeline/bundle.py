"""The bundle: the .tflite (and ONNX Runtime's .onnx) variants, eval.npz and manifest.json that
deploy/ ships to a board.

One writer for every model source. manifest.json is written last, after every file it lists is
complete, and names each file's sha256: a bundle without a manifest, or with a mismatching file,
is not a bundle. `staged` builds a bundle beside its final place and swaps it in with one rename,
so a refused input or a failed conversion never leaves a half-written bundle.
"""
from __future__ import annotations

import io
import json
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from device.contract.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from host.config import ARTIFACTS, VERSION
from host.convert.interop.ort_variants import is_onnx
from host.data.builtin import DatasetError

if TYPE_CHECKING:
    from host.pipeline.evaluate import Scored

SCHEMA = "edgekit/bundle-v1"
TENSOR_KEYS = ("name", "shape", "dtype", "scale", "zero_point")


class BundleError(Exception):
    """A bundle is missing, incomplete or does not match its manifest (one line)."""


def bundle_dir(name: str) -> Path:
    """artifacts/NAME, refusing a name that is not one plain folder name."""
    if not name or "/" in name or name.startswith("."):
        raise DatasetError(f"NAME={name!r}: a plain name for artifacts/NAME")
    return ARTIFACTS / name


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"edgekit": VERSION, "python": platform.python_version()}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "ai-edge-litert", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def memory_plan_summary(path: Path) -> dict | None:
    """The static memory plan's headline figures (device/profiling/memplan.py), for the size table."""
    from device.profiling.memplan import plan_file
    try:
        plan = plan_file(str(path))
    except Exception:  # the plan is extra information: a model it cannot read still ships
        return None
    return {k: plan[k] for k in ("weights_bytes", "unpacked_weights_bytes", "arena_bytes", "peak_op",
                                 "peak_op_type")}


def write_eval_set(path: Path, x: np.ndarray, y: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    arrays = {"x": x.astype(np.uint8), "y": y.astype(np.int64)}
    arrays.update({f"pred_{k}": v.astype(np.int64) for k, v in predictions.items()})
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


@dataclass
class ManifestParts:
    """What a model source says in its manifest, around the fields every bundle has.

    The manifest reads schema, name, created_utc, *head*, variants, *body*, eval, *tail*; each
    variant reads file, sha256, size_bytes, input, output, *before*, host_top1, agreement_with_fp32,
    *after* (+ memory_plan when `memory_plan`).
    """
    head: dict                                             # dataset, class_names, input
    body: dict                                             # origin, model
    tail: dict = field(default_factory=dict)               # versions, or calibration / int8_debug / notes
    before: dict[str, dict] = field(default_factory=dict)  # per variant, before its scores
    after: dict[str, dict] = field(default_factory=dict)   # per variant, after its scores
    memory_plan: bool = False                              # record each variant's static memory plan


def write_bundle(folder: Path, name: str, files: dict[str, bytes], scored: dict[str, Scored],
                 ios: dict[str, dict], parts: ManifestParts,
                 eval_set: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """Write the variants and eval.npz into `folder`, then the manifest that vouches for them.

    `ios` holds each variant's tensors ({"inputs": [...], "outputs": [...]}); `eval_set` is the
    (uint8 pixels, labels) the scores came from, or None for a bundle whose accuracy is unchecked.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = scored.get("fp32")
    entries = {}
    for variant, data in files.items():
        path = folder / f"{variant}{'.onnx' if is_onnx(data) else '.tflite'}"
        atomic_write_bytes(path, data)
        s = scored[variant]
        agree = (None if fp32 is None or s.predictions is None or fp32.predictions is None
                 else float(np.mean(s.predictions == fp32.predictions)))
        inp, out = ios[variant]["inputs"][0], ios[variant]["outputs"][0]
        entries[variant] = {"file": path.name, "sha256": sha256_file(path), "size_bytes": path.stat().st_size,
                            "input": {k: inp[k] for k in TENSOR_KEYS}, "output": {k: out[k] for k in TENSOR_KEYS},
                            **parts.before.get(variant, {}), "host_top1": s.top1, "agreement_with_fp32": agree,
                            **parts.after.get(variant, {})}
        if parts.memory_plan:
            entries[variant]["memory_plan"] = memory_plan_summary(path)
    manifest = {"schema": SCHEMA, "name": name, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **parts.head, "variants": entries, **parts.body}
    if eval_set is not None:
        x, y = eval_set
        eval_path = folder / "eval.npz"
        write_eval_set(eval_path, x, y, {k: v.predictions for k, v in scored.items()})
        manifest["eval"] = {"file": eval_path.name, "sha256": sha256_file(eval_path), "count": int(len(y))}
    else:
        manifest["eval"] = None
        if not parts.head.get("eval_set"):          # a detector's set is scored by its task's metric
            manifest["accuracy_checked"] = False
    manifest.update(parts.tail)
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """A temp folder beside `final`, swapped into its place in one rename when the block completes;
    on any error it is removed and an earlier bundle of the same name stays as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{time.time_ns()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_manifest(bundle: Path, verify: bool = True) -> dict:
    """Read a bundle's manifest; with `verify`, check every listed file's sha256."""
    path = Path(bundle) / "manifest.json"
    if not path.is_file():
        raise BundleError(f"no bundle at {bundle} (manifest.json missing): run `make quantize` first")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("schema") != SCHEMA:
        raise BundleError(f"{path}: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    if verify:
        listed = [(v["file"], v["sha256"]) for v in manifest["variants"].values()]
        if manifest.get("eval"):
            listed.append((manifest["eval"]["file"], manifest["eval"]["sha256"]))
        for file, digest in listed:
            f = Path(bundle) / file
            if not f.is_file():
                raise BundleError(f"bundle {bundle}: {file} is missing")
            if sha256_file(f) != digest:
                raise BundleError(f"bundle {bundle}: {file} does not match its sha256 in manifest.json")
    return manifest
