"""The host steps behind `make train`, `make quantize` and `make evaluate`.

Each step reads what the previous one wrote under artifacts/<name>/, so steps can be re-run
alone; the dataset is re-created from its spec and split seed (recorded by training).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from host.config import ARTIFACTS, DEFAULTS
from host.data.builtin import load_dataset


def bundle_dir(name: str) -> Path:
    return ARTIFACTS / name


def run_train(dataset: str, name: str, epochs: int = DEFAULTS.epochs, alpha: float = DEFAULTS.alpha,
              seed: int = DEFAULTS.seed, image_size: tuple[int, int] | None = None) -> dict:
    from device.contract.fileio import atomic_write_text
    from host.model.train import train

    ds = load_dataset(dataset, DEFAULTS.split_seed, image_size)
    print(f"dataset {ds.name}: {len(ds.y_train)} train / {len(ds.y_val)} val / {len(ds.y_test)} test, "
          f"input {ds.input_shape}, {ds.num_classes} classes")
    out = bundle_dir(name)
    summary = train(ds, out, epochs=epochs, alpha=alpha, seed=seed)
    config = {"dataset_spec": dataset, "split_seed": DEFAULTS.split_seed, "image_size": image_size,
              "alpha": alpha, "seed": seed, "epochs": epochs}
    atomic_write_text(out / "train_config.json", json.dumps(config, indent=2))
    print(f"trained {summary['epochs_run']} epochs, best val accuracy {100 * summary['best_val_accuracy']:.2f} % "
          f"(epoch {summary['best_epoch']}), {summary['params']:,} params -> {out}/model.keras")
    return summary


def run_quantize(name: str, calibration_samples: int = DEFAULTS.calibration_samples,
                 variants=DEFAULTS.variants) -> dict:
    import keras

    from host.convert.quantize import convert_all, graph_summary
    from host.model.architecture import count_macs
    from host.model.train import normalise
    from host.pipeline.bundle import write_bundle
    from host.pipeline.evaluate import evaluate_variants

    out = bundle_dir(name)
    cfg_path = out / "train_config.json"
    if not (out / "model.keras").is_file() or not cfg_path.is_file():
        raise FileNotFoundError(f"no trained model in {out}: run `make train` first")
    cfg = json.loads(cfg_path.read_text())
    size = tuple(cfg["image_size"]) if cfg.get("image_size") else None
    ds = load_dataset(cfg["dataset_spec"], cfg["split_seed"], size)
    model = keras.models.load_model(out / "model.keras")

    keras_pred = np.argmax(model.predict(normalise(ds.x_test), verbose=0, batch_size=256), axis=1)
    keras_top1 = float(np.mean(keras_pred == ds.y_test))
    # Calibrate on training images only (the test split never informs the model).
    rng = np.random.default_rng(DEFAULTS.seed)
    n = min(calibration_samples, len(ds.x_train))
    calib = normalise(ds.x_train[rng.choice(len(ds.x_train), n, replace=False)])

    tflite = convert_all(model, calib, variants)
    specs = {v: graph_summary(b) for v, b in tflite.items()}
    evals = evaluate_variants(tflite, ds.x_test, ds.y_test)
    model_info = {"params": int(model.count_params()), "macs": count_macs(model), "alpha": cfg["alpha"],
                  "keras_top1": keras_top1, "calibration_samples": n}
    manifest = write_bundle(out, name, cfg["dataset_spec"], ds, tflite, specs, evals, model_info)
    print_summary(manifest)
    return manifest


def summary_rows(manifest: dict) -> list[dict]:
    variants = manifest["variants"]
    base = variants.get("fp32")
    rows = []
    for name, v in variants.items():
        rows.append({"variant": name, "size_bytes": v["size_bytes"],
                     "size_ratio": v["size_bytes"] / base["size_bytes"] if base else float("nan"),
                     "top1": v["host_top1"],
                     "delta_pp": 100 * (v["host_top1"] - base["host_top1"]) if base else float("nan"),
                     "agreement": v["agreement_with_fp32"] if v["agreement_with_fp32"] is not None else float("nan"),
                     "plan": v.get("memory_plan")})
    return rows


def print_summary(manifest: dict) -> None:
    from host.pipeline.evaluate import summary_table

    m = manifest["model"]
    print(f"\n{manifest['name']}: {m['params']:,} params, {m['macs'] / 1e6:.2f} M MACs, "
          f"Keras test top-1 {100 * m['keras_top1']:.2f} % on {manifest['eval']['count']} test images")
    rows = summary_rows(manifest)
    print(summary_table(rows))
    by = {r["variant"]: r for r in rows}
    if "int8" in by and "fp32" in by:
        i8 = by["int8"]
        checks = [("INT8 size <= 0.30x FP32", i8["size_ratio"] <= 0.30, f"{i8['size_ratio']:.3f}x"),
                  ("INT8 - FP32 accuracy >= -0.3 pp", i8["delta_pp"] >= -0.3, f"{i8['delta_pp']:+.2f} pp")]
        if manifest["dataset"]["spec"] == "mnist5k":
            checks.insert(0, ("INT8 test top-1 >= 98.0 % (mnist5k)", i8["top1"] >= 0.98, f"{100 * i8['top1']:.2f} %"))
        print("\ntargets:")
        for text, ok, value in checks:
            print(f"  [{'ok' if ok else 'MISSED'}] {text}: {value}")
        ints = manifest["variants"]["int8"]
        print(f"  int8 graph: {ints['ops']} ops, float ops: {', '.join(ints['float_ops']) or 'none'}, "
              f"input {ints['input']['dtype']} (scale {ints['input']['scale']:.6g}, zero point "
              f"{ints['input']['zero_point']}), output {ints['output']['dtype']}")


def run_evaluate(name: str) -> dict:
    """Re-evaluate the bundle's files as they are on disk (after verifying their checksums)."""
    from host.pipeline.bundle import load_manifest
    from host.pipeline.evaluate import predict_tflite

    out = bundle_dir(name)
    manifest = load_manifest(out)
    if manifest.get("origin"):          # your own model (host/pipeline/byom.py): its own preprocessing and table
        from host.pipeline.byom import reevaluate

        return reevaluate(out, manifest)
    data = np.load(out / manifest["eval"]["file"])
    for variant, v in manifest["variants"].items():
        preds = predict_tflite((out / v["file"]).read_bytes(), data["x"], f"evaluating {variant}")
        top1 = float(np.mean(preds == data["y"]))
        if abs(top1 - v["host_top1"]) > 1e-9:
            print(f"warning: {variant} top-1 {top1:.4f} differs from the manifest's {v['host_top1']:.4f}")
        v["host_top1"] = top1
    print_summary(manifest)
    return manifest
