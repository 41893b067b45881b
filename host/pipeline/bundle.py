"""The bundle: the .tflite variants, eval.npz and manifest.json that deploy/ ships to a board.

manifest.json is written last, after every file it lists is complete, and names each file's
sha256: a bundle without a manifest, or with a mismatching file, is not a bundle.
"""
from __future__ import annotations

import io
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from device.contract.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from host.config import ARTIFACTS, VERSION
from host.data.builtin import Dataset, DatasetError, PIXEL_OFFSET, PIXEL_SCALE
from host.data.user import RANDOM, EvalSet
from host.pipeline.evaluate import Scored

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


# ---------------------------------------------------------------- a bundle of any model (a user's own)

def bundle_dir(name: str) -> Path:
    """artifacts/NAME, for a plain NAME only (never a path that escapes artifacts/)."""
    if not name or "/" in name or name.startswith("."):
        raise DatasetError(f"NAME={name!r}: a plain name for artifacts/NAME")
    return ARTIFACTS / name


def write_model_bundle(name: str, variants: dict[str, bytes], scored: dict[str, Scored], io: dict[str, dict],
                       ev: EvalSet | None, input_info: dict | None, class_names: list[str] | None,
                       origin: dict, extra: dict) -> dict:
    """Build the bundle in a temp dir, then swap it into artifacts/NAME in one rename."""
    final = bundle_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=final.parent))
    try:
        fp32 = scored.get("fp32")
        entries = {}
        for variant, data in variants.items():
            path = tmp / f"{variant}.tflite"
            path.write_bytes(data)
            s = scored[variant]
            agree = (None if fp32 is None or s.predictions is None or fp32.predictions is None
                     else float(np.mean(s.predictions == fp32.predictions)))
            inp, outp = io[variant]["inputs"][0], io[variant]["outputs"][0]
            entries[variant] = {"file": path.name, "sha256": sha256_file(path), "size_bytes": path.stat().st_size,
                                "input": {k: inp[k] for k in ("name", "shape", "dtype", "scale", "zero_point")},
                                "output": {k: outp[k] for k in ("name", "shape", "dtype", "scale", "zero_point")},
                                "inputs": len(io[variant]["inputs"]), "host_top1": s.top1,
                                "agreement_with_fp32": agree, "host_us": round(s.host_us, 2)}
            entries[variant].update(extra.get("variant_info", {}).get(variant, {}))
        manifest = {"schema": SCHEMA, "name": name,
                    "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "dataset": {"spec": ev.spec if ev else None, "name": ev.spec if ev else None,
                                "n_test": int(len(ev.y)) if ev else 0},
                    "class_names": class_names}
        if input_info:
            manifest["input"] = input_info
        manifest["variants"] = entries
        manifest["origin"] = origin
        manifest["model"] = extra.get("model", {})
        if ev is not None:
            eval_path = tmp / "eval.npz"
            write_eval_set(eval_path, ev.x, ev.y, {k: v.predictions for k, v in scored.items()})
            manifest["eval"] = {"file": eval_path.name, "sha256": sha256_file(eval_path), "count": int(len(ev.y))}
        else:
            manifest["eval"] = None
            manifest["accuracy_checked"] = False
        for key in ("calibration", "int8_debug", "accuracy_checked", "notes"):
            if key in extra:
                manifest[key] = extra[key]
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2))
        old = None
        if final.exists():
            old = final.parent / f".{name}.old-{time.time_ns()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def print_model_table(manifest: dict) -> None:
    v = manifest["variants"]
    base = v.get("fp32")
    head = f"{'variant':<8} {'size KB':>9} {'x fp32':>7} {'top-1 %':>8} {'Δ pp':>7} {'agree %':>8} {'host µs':>9}"
    lines = [head, "-" * len(head)]

    def f(x, spec):
        return "–" if x is None else format(x, spec)
    for name, e in v.items():
        ratio = e["size_bytes"] / base["size_bytes"] if base else None
        delta = (100 * (e["host_top1"] - base["host_top1"])
                 if base and e["host_top1"] is not None and base["host_top1"] is not None else None)
        agree = None if e["agreement_with_fp32"] is None else 100 * e["agreement_with_fp32"]
        top1 = None if e["host_top1"] is None else 100 * e["host_top1"]
        lines.append(f"{name:<8} {e['size_bytes'] / 1024:>9.1f} {f(ratio, '>7.3f'):>7} {f(top1, '>8.2f'):>8} "
                     f"{f(delta, '>+7.2f'):>7} {f(agree, '>8.2f'):>8} {e['host_us']:>9.1f}")
    o = manifest["origin"]
    count = (manifest.get("eval") or {}).get("count")
    print(f"\n{manifest['name']}: {o['format']} model {o['path']}"
          + (f", {count} eval images" if count else ", no eval set (accuracy not checked)"))
    if manifest.get("input"):
        i = manifest["input"]
        colour = i["color_order"] if i["channels"] == 3 else "gray"
        print(f"input {i['height']}x{i['width']}x{i['channels']} {colour}, resize {i['resize']}, "
              f"preprocess {i['preprocess']} (f = pixel*{i['pixel_scale']} + {i['pixel_offset']})")
    print("\n".join(lines))
    if manifest.get("accuracy_checked") is False:
        print("accuracy: UNCHECKED (" + ("CALIB=random" if (manifest.get("calibration") or {}).get("source") == RANDOM
                                         else "no EVAL=") + ")")
    dbg = manifest.get("int8_debug")
    if dbg:
        print(f"\nint8 loses accuracy ({dbg['reason']}); worst layers (RMSE / quantisation step):")
        for r in dbg["worst_layers"]:
            print(f"  {r['rmse_over_scale']:>8.3f}  {r['op']:<20} {r['layer']}")
        if "mixed" in v and "int8" in v:
            m, i8 = v["mixed"], v["int8"]
            gain = (100 * (m["host_top1"] - i8["host_top1"])
                    if m["host_top1"] is not None and i8["host_top1"] is not None else float("nan"))
            print(f"mixed keeps {', '.join(dbg.get('kept_float', []))} in float: {gain:+.2f} pp top-1 vs int8, "
                  f"size x{m['size_bytes'] / i8['size_bytes']:.2f}, host latency x{m['host_us'] / max(i8['host_us'], 1e-9):.2f}")
        else:
            print("  INT8_FALLBACK=N re-converts with the N worst layers kept in float (variant 'mixed')")
