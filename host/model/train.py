"""Training: seeded, validated, early-stopped, with light augmentation and a saved history.

Model selection uses the validation split only; the test split is left for evaluation.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from deploy.settings import quiet
from device.contract.fileio import atomic_write_text
from host.config import DEFAULTS
from host.data.builtin import Dataset, PIXEL_OFFSET, PIXEL_SCALE


def _augmenter(color: str, shape: tuple[int, int, int]):
    """Shifts/rotations for digits-like grayscale data; flips + crops for colour images."""
    import keras
    from keras import layers

    if min(shape[:2]) < 12:  # 8x8 digits: a 1-pixel shift is already 12 %
        return keras.Sequential([layers.RandomTranslation(0.1, 0.1, fill_mode="constant")], name="augment")
    if color == "grayscale":
        return keras.Sequential([layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
                                 layers.RandomRotation(0.05, fill_mode="constant"),
                                 layers.RandomZoom(0.1, fill_mode="constant")], name="augment")
    return keras.Sequential([layers.RandomFlip("horizontal"),
                             layers.RandomTranslation(0.1, 0.1, fill_mode="reflect")], name="augment")


def normalise(x_uint8: np.ndarray) -> np.ndarray:
    """The one normalisation used everywhere (also written into the manifest for the board)."""
    return x_uint8.astype(np.float32) * np.float32(PIXEL_SCALE) + np.float32(PIXEL_OFFSET)


def train(ds: Dataset, out_dir: Path, epochs: int = DEFAULTS.epochs, alpha: float = DEFAULTS.alpha,
          seed: int = DEFAULTS.seed, batch_size: int = DEFAULTS.batch_size, augment: bool = True,
          verbose: int | None = None, callbacks: list = (), **arch) -> dict:
    """Train, keep the best-validation weights, write model.keras + history.json + training_curve.png.

    `arch` is any other argument of host/model.build_model (blocks, kernel, stem_filters,
    stem_stride): the model search varies them, the default pipeline leaves them at the defaults.
    `verbose=None` follows the quiet switch; the model search passes 0 (it has its own progress bar)
    and its pruner's callback (which may stop a run that is not keeping up)."""
    import keras
    import tensorflow as tf

    from host.model.architecture import build_model

    keras.utils.set_random_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(ds.input_shape, ds.num_classes, alpha=alpha, **arch)
    steps = max(1, -(-len(ds.y_train) // batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(DEFAULTS.learning_rate, decay_steps=steps * epochs,
                                                      alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    aug = _augmenter(ds.color, ds.input_shape) if augment else None
    train_ds = tf.data.Dataset.from_tensor_slices((normalise(ds.x_train), ds.y_train))
    train_ds = train_ds.shuffle(len(ds.y_train), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if aug is not None:
        train_ds = train_ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=1)
    train_ds = train_ds.prefetch(2)
    val = (normalise(ds.x_val), ds.y_val)

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".train-") as tmp:
        ckpt = Path(tmp) / "best.keras"
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=DEFAULTS.patience,
                                          restore_best_weights=True, mode="max"),
            keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_accuracy", save_best_only=True, mode="max"),
            *callbacks,
        ]
        hist = model.fit(train_ds, validation_data=val, epochs=epochs, callbacks=callbacks,
                         verbose=verbose if verbose is not None else
                         0 if quiet() else (1 if sys.stdout.isatty() else 2))
        history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        # Save through a temp name so an interrupted run never leaves a half-written model.keras.
        tmp_model = Path(tmp) / "model.keras"
        model.save(tmp_model)
        shutil.move(str(tmp_model), out_dir / "model.keras")

    best = int(np.argmax(history["val_accuracy"]))
    summary = {"epochs_run": len(history["loss"]), "best_epoch": best + 1,
               "best_val_accuracy": history["val_accuracy"][best], "params": int(model.count_params()),
               "alpha": alpha, "seed": seed, "dataset": ds.summary(), "history": history}
    atomic_write_text(out_dir / "history.json", json.dumps(summary, indent=2))
    plot_history(history, out_dir / "training_curve.png")
    return summary


def plot_history(history: dict, path: Path) -> None:
    from host.plots import pyplot, save_png

    fig, (a1, a2) = pyplot().subplots(1, 2, figsize=(9, 3.5))
    epochs = range(1, len(history["loss"]) + 1)
    a1.plot(epochs, history["loss"], label="train")
    a1.plot(epochs, history["val_loss"], label="validation")
    a1.set_title("loss"), a1.set_xlabel("epoch"), a1.legend()
    a2.plot(epochs, history["accuracy"], label="train")
    a2.plot(epochs, history["val_accuracy"], label="validation")
    a2.set_title("accuracy"), a2.set_xlabel("epoch"), a2.legend()
    save_png(fig, path)
