"""The bundle: the .tflite variants, eval.npz and manifest.json that deploy/ ships to a board.

manifest.json is written last, after every file it lists is complete, and names each file's
sha256: a bundle without a manifest, or with a mismatching file, is not a bundle.
"""
from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

import numpy as np

from host.config import VERSION
from host.data.builtin import PIXEL_OFFSET, PIXEL_SCALE, Dataset
from device.contract.fileio import atomic_write_bytes, atomic_write_text, sha256_file

SCHEMA = "edgekit/bundle-v1"


class BundleError(Exception):
    """A bundle is missing, incomplete or does not match its manifest (one line)."""


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"edgekit": VERSION, "python": platform.python_version()}
    for pkg in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "ai-edge-litert"):
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


def write_bundle(out_dir: Path, name: str, dataset_spec: str, ds: Dataset, variants: dict[str, bytes],
                 specs: dict[str, dict], evals: dict, model_info: dict) -> dict:
    """Write variants + eval.npz, then the manifest that vouches for them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32_pred = evals["fp32"].predictions if "fp32" in evals else None
    entries = {}
    for variant, data in variants.items():
        path = out_dir / f"{variant}.tflite"
        atomic_write_bytes(path, data)
        ev = evals[variant]
        entries[variant] = {
            "file": path.name, "sha256": sha256_file(path), "size_bytes": path.stat().st_size,
            "input": specs[variant]["inputs"][0], "output": specs[variant]["outputs"][0],
            "ops": len(specs[variant]["ops"]), "float_ops": specs[variant]["float_ops"],
            "host_top1": ev.top1,
            "agreement_with_fp32": None if fp32_pred is None else float(np.mean(ev.predictions == fp32_pred)),
            "memory_plan": memory_plan_summary(path),
        }
    eval_path = out_dir / "eval.npz"
    write_eval_set(eval_path, ds.x_test, ds.y_test, {k: v.predictions for k, v in evals.items()})
    h, w, c = ds.input_shape
    manifest = {
        "schema": SCHEMA, "name": name,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": {"spec": dataset_spec, **ds.summary()},
        "class_names": ds.class_names,
        "input": {"height": h, "width": w, "channels": c, "color": ds.color, "layout": "NHWC",
                  "pixel_scale": PIXEL_SCALE, "pixel_offset": PIXEL_OFFSET},
        "variants": entries,
        "model": model_info,
        "eval": {"file": eval_path.name, "sha256": sha256_file(eval_path), "count": int(len(ds.y_test))},
        "versions": library_versions(),
    }
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


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
