"""The built-in model as a model source: the Keras model `make train` left in artifacts/NAME, its
dataset re-created from the recorded spec and split seed, calibrated on training images only.

What is particular to it is only where the model and data come from and what its manifest says
(dataset summary, the fixed pixel rule, params/MACs, library versions); conversion, evaluation, the
bundle and the summary are the shared ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.config import DEFAULTS
from host.data.builtin import PIXEL_OFFSET, PIXEL_SCALE, Dataset, load_dataset
from host.pipeline.bundle import ManifestParts, library_versions, write_bundle
from host.pipeline.evaluate import Scored


@dataclass
class Trained:
    model: object            # the Keras model
    dataset_spec: str
    ds: Dataset
    config: dict             # train_config.json


def load(folder: Path) -> Trained:
    """The trained model in `folder` and its dataset, exactly as training split it."""
    import keras

    cfg_path = folder / "train_config.json"
    if not (folder / "model.keras").is_file() or not cfg_path.is_file():
        raise FileNotFoundError(f"no trained model in {folder}: run `make train` first")
    cfg = json.loads(cfg_path.read_text())
    size = tuple(cfg["image_size"]) if cfg.get("image_size") else None
    ds = load_dataset(cfg["dataset_spec"], cfg["split_seed"], size)
    return Trained(keras.models.load_model(folder / "model.keras"), cfg["dataset_spec"], ds, cfg)


def calibration(ds: Dataset, n: int) -> np.ndarray:
    """`n` training images (the test split never informs the model), as float inputs."""
    from host.model.train import normalise

    rng = np.random.default_rng(DEFAULTS.seed)
    return normalise(ds.x_train[rng.choice(len(ds.x_train), min(n, len(ds.x_train)), replace=False)])


def manifest_parts(dataset_spec: str, ds: Dataset, specs: dict[str, dict], model_info: dict,
                   softmax: dict | None = None) -> ManifestParts:
    """The built-in model's manifest fields; `specs` is each variant's graph_summary; `softmax` where
    the classifier's softmax is (host/convert/logits.py)."""
    h, w, c = ds.input_shape
    head = {"dataset": {"spec": dataset_spec, **ds.summary()}, "class_names": ds.class_names,
            "input": {"height": h, "width": w, "channels": c, "color": ds.color, "layout": "NHWC",
                      "pixel_scale": PIXEL_SCALE, "pixel_offset": PIXEL_OFFSET}}
    if softmax:
        head["softmax"] = softmax
    before = {v: {"ops": len(s["ops"]), "float_ops": s["float_ops"]} for v, s in specs.items()}
    return ManifestParts(head, {"model": model_info}, {"versions": library_versions()}, before, memory_plan=True)


def write_trained_bundle(out_dir: Path, name: str, dataset_spec: str, ds: Dataset, variants: dict[str, bytes],
                         specs: dict[str, dict], evals: dict[str, Scored], model_info: dict,
                         softmax: dict | None = None) -> dict:
    """A bundle of a model trained on a built-in dataset, evaluated on its test split (in place in `out_dir`)."""
    return write_bundle(out_dir, name, variants, evals, specs, manifest_parts(dataset_spec, ds, specs, model_info, softmax),
                        (ds.x_test, ds.y_test))
