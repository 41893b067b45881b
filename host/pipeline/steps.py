"""The host steps behind `make train`, `make quantize` (the built-in model) and `make evaluate`.

Each step reads what the previous one wrote under artifacts/<name>/, so steps can be re-run
alone; the dataset is re-created from its spec and split seed (recorded by training). The built-in
model takes the same path as a user's own model (host/pipeline/byom.py): load -> convert ->
evaluate -> bundle -> summary; only where the model and its data come from differs.
"""
from __future__ import annotations

import json

import numpy as np

from host.config import DEFAULTS
from host.data.builtin import load_dataset
from host.pipeline.bundle import bundle_dir


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
                 variants=DEFAULTS.variants, softmax: str = "host") -> dict:
    """The built-in model: convert every variant, evaluate on the test split, bundle in place, summary.

    `softmax` "host" takes the classifier's final SOFTMAX out of every variant (host/convert/logits.py)."""
    from host.convert import logits
    from host.convert.quantize import convert_all, graph_summary
    from host.model.architecture import count_macs
    from host.model.train import normalise
    from host.pipeline import trained
    from host.pipeline.evaluate import evaluate_variants
    from host.pipeline.summary import print_summary

    out = bundle_dir(name)
    src = trained.load(out)
    ds, model = src.ds, src.model
    keras_top1 = float(np.mean(np.argmax(model.predict(normalise(ds.x_test), verbose=0, batch_size=256), axis=1)
                               == ds.y_test))
    calib = trained.calibration(ds, calibration_samples)
    files, where = logits.apply(convert_all(model, calib, variants), softmax)
    specs = {v: graph_summary(b) for v, b in files.items()}
    scored = evaluate_variants(files, ds.x_test, ds.y_test)
    info = {"params": int(model.count_params()), "macs": count_macs(model), "alpha": src.config["alpha"],
            "keras_top1": keras_top1, "calibration_samples": len(calib)}
    manifest = trained.write_trained_bundle(out, name, src.dataset_spec, ds, files, specs, scored, info, where)
    print_summary(manifest)
    return manifest


def run_evaluate(name: str) -> dict:
    """Re-evaluate the bundle's files as they are on disk (after verifying their checksums), any source
    and any task: top-1 for a classifier, the task's metric on its set for the others."""
    from host.pipeline.bundle import load_manifest
    from host.pipeline.evaluate import reevaluate
    from host.pipeline.summary import print_summary
    from host.pipeline.tasks import rescore

    out = bundle_dir(name)
    manifest = load_manifest(out)
    if (manifest.get("eval") or {}).get("kind") in ("images", "tensors"):
        print_summary(manifest)
        return rescore(out, manifest)
    manifest = reevaluate(out, manifest)
    print_summary(manifest)
    return manifest
