"""A user's data for their own model: labels, calibration images (CALIB=) and a labelled eval set (EVAL=).

Every image goes through the board's own decoding and fitting (`device.contract.inputs.read_image` /
`fit_pixels`), so `eval.npz` holds exactly the uint8 pixels the board would make of the same files,
already at the model's input size: the board then applies only the pixel rule.
"""
from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.contract.inputs import IMAGE_EXTS, Preprocess, fit_pixels, read_image
from device.errors import AgentError
from host.data.builtin import DatasetError, load_dataset, read_npz

RANDOM = "random"
NO_CALIBRATION = ("no calibration data: give CALIB= (--calib) a folder of images, npz:PATH, a dataset name, "
                  "or CALIB=random to accept an unchecked INT8 model")


@dataclass
class EvalSet:
    x: np.ndarray            # uint8 (N,H,W,C) at the model's input size
    y: np.ndarray            # int64 (N,) class indices into the labels
    spec: str
    class_names: list[str] | None  # from the eval source when LABELS= is not given


def read_labels(path: str | Path) -> list[str]:
    """One label per line (blank lines at the end ignored), as most model zoos ship them."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"labels file not found: {p} (LABELS= one label per line)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read labels file {p}: {type(exc).__name__}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DatasetError(f"labels file {p} is empty")
    return [l.strip() for l in lines]


def match_label(name: str, labels: list[str]) -> int | None:
    """A folder matches a label when it equals the whole line or its first comma-separated name."""
    for i, line in enumerate(labels):
        if name == line or name == line.split(",")[0].strip():
            return i
    low = name.lower()
    for i, line in enumerate(labels):
        if low == line.lower() or low == line.split(",")[0].strip().lower():
            return i
    return None


def nearest_labels(name: str, labels: list[str], n: int = 3) -> list[str]:
    firsts = [l.split(",")[0].strip() for l in labels]
    return difflib.get_close_matches(name, firsts, n=n, cutoff=0.0)


def _read(path: Path, pre: Preprocess) -> np.ndarray:
    """One image file (or an MLPerf-style raw .bin of H*W*C bytes) -> (H,W,C) uint8 at the model's size."""
    if path.suffix.lower() == ".bin":
        data = np.fromfile(path, dtype=np.uint8)
        if data.size != pre.height * pre.width * pre.channels:
            raise DatasetError(f"{path}: {data.size} bytes, but a raw image for this model is "
                               f"{pre.height}x{pre.width}x{pre.channels} bytes")
        return data.reshape(pre.height, pre.width, pre.channels)
    try:
        return read_image(str(path), pre)
    except AgentError as exc:
        raise DatasetError(f"{exc} (fix or remove the file)") from None


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _fit_all(x: np.ndarray, pre: Preprocess, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        if x.dtype.kind not in "iuf":
            raise DatasetError(f"{what}: images must be numbers, got {x.dtype.name}")
        scaled = x.astype(np.float64) * (255.0 if x.size and x.max() <= 1.0 else 1.0)
        x = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise DatasetError(f"{what}: expected images shaped (N,H,W) or (N,H,W,1|3), got {list(x.shape)}")
    return np.stack([fit_pixels(img, pre) for img in x]) if len(x) else x


def _npz(path: str, keys: tuple[str, ...], what: str) -> dict:
    arrays = read_npz(path, what)
    if not any(k in arrays for k in keys):
        raise DatasetError(f"{what}: {path} has none of the arrays {', '.join(keys)} (it has {', '.join(arrays)})")
    return arrays


def load_calibration(spec: str | None, n: int, pre: Preprocess, seed: int = 42) -> np.ndarray:
    """Up to `n` uint8 images for INT8 calibration, at the model's size.

    `random` only when asked for (the bundle then says its INT8 accuracy is unchecked).
    """
    if not spec:
        raise DatasetError(NO_CALIBRATION)
    rng = np.random.default_rng(seed)
    if spec == RANDOM:
        return rng.integers(0, 256, size=(n, pre.height, pre.width, pre.channels), dtype=np.uint8)
    folder = spec[len("folder:"):] if spec.startswith("folder:") else (spec if Path(spec).is_dir() else None)
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"calibration folder not found: {root}")
        files = _images_under(root)
        if not files:
            raise DatasetError(f"calibration folder {root} has no images ({', '.join(IMAGE_EXTS)})")
        pick = sorted(rng.choice(len(files), min(n, len(files)), replace=False))
        return np.stack([_read(files[i], pre) for i in pick])
    if spec.startswith("npz:"):
        arrays = _npz(spec[4:], ("x_train", "x_calib", "x"), "CALIB")
        x = next(arrays[k] for k in ("x_train", "x_calib", "x") if k in arrays)
    else:
        x = load_dataset(spec).x_train   # a dataset the project knows; its training split only
    pick = np.sort(rng.choice(len(x), min(n, len(x)), replace=False))
    return _fit_all(np.asarray(x)[pick], pre, f"CALIB={spec}")


def load_tensor_calibration(spec: str, n: int, inputs: list[dict], names: list[str],
                            seed: int = 42) -> list[np.ndarray]:
    """CALIB=npz:PATH for a model whose inputs are not one image: up to `n` samples of every input,
    as arrays named after the model's inputs (`names`, e.g. the Keras Input names, or the .tflite's
    tensor names) or by position (x, or x0, x1, ... in the .tflite's input order), matched by the
    board's own matcher as the any-tensor eval sets are; each shaped like its input (samples first)
    and cast to the input's dtype."""
    from device.contract import feeds
    from host.evalsets.tensors import read_tensors

    if not spec.startswith("npz:"):
        raise DatasetError(f"CALIB={spec}: this model's inputs ({', '.join(names)}) are not one image: calibrate "
                           "it from npz:PATH (one array per input, samples first, by those names or x0, x1, ... "
                           "in that order)")
    ts = read_tensors(spec[4:], spec, expected=False)
    try:
        keys = feeds.match(ts.input_names, [dict(s, index=i) for i, s in enumerate(inputs)], f"CALIB={spec}",
                           dict(enumerate(names)))
    except AgentError as exc:
        raise DatasetError(str(exc)) from None
    given = [ts.inputs[ts.input_names.index(k)] for k in keys]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(given[0]), min(n, len(given[0])), replace=False))
    out = []
    for i, (arr, spec_in, name) in enumerate(zip(given, inputs, names)):
        want = [max(1, d) for d in spec_in["shape"][1:]]
        if int(np.prod(arr.shape[1:])) != int(np.prod(want)):
            raise DatasetError(f"CALIB={spec}: input {i} ({name}) takes samples shaped {want}; its array "
                               f"has {list(arr.shape[1:])}")
        out.append(arr[pick].reshape([len(pick)] + want).astype(spec_in["dtype"]))
    return out


def load_eval(spec: str, pre: Preprocess, labels: list[str] | None) -> EvalSet:
    """EVAL=folder:PATH | npz:PATH | csv:PATH -> uint8 images at the model's size and label indices."""
    if spec.startswith("folder:") or (":" not in spec and Path(spec).is_dir()):
        return _eval_folder(Path(spec.split(":", 1)[1] if spec.startswith("folder:") else spec), pre, labels, spec)
    if spec.startswith("npz:"):
        arrays = _npz(spec[4:], ("x_test",), "EVAL")
        if "y_test" not in arrays:
            raise DatasetError(f"EVAL: {spec[4:]} has x_test but no y_test")
        y = np.asarray(arrays["y_test"])
        y = y.argmax(axis=1) if y.ndim == 2 else y.ravel()
        names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else None
        return EvalSet(_fit_all(arrays["x_test"], pre, "EVAL"), y.astype(np.int64), spec, names)
    if spec.startswith("csv:"):
        return _eval_csv(Path(spec[4:]), pre, spec)
    raise DatasetError(f"EVAL={spec}: use folder:PATH (one sub-folder per class), npz:PATH (x_test, y_test) "
                       "or csv:PATH (file name, label index per line)")


def _eval_folder(root: Path, pre: Preprocess, labels: list[str] | None, spec: str) -> EvalSet:
    if not root.is_dir():
        raise DatasetError(f"eval folder not found: {root}")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DatasetError(f"eval folder {root} has no class sub-folders (one sub-folder of images per class)")
    index: dict[str, int] = {}
    numbered = labels is None and all(d.name.isdigit() for d in dirs)   # folders 0..9, 10, ...: the index itself
    for d in dirs:
        if labels is None:
            index[d.name] = int(d.name) if numbered else len(index)
            continue
        i = match_label(d.name, labels)
        if i is None:
            near = ", ".join(repr(n) for n in nearest_labels(d.name, labels))
            raise DatasetError(f"eval folder {d}: class {d.name!r} is not in the labels (nearest: {near}); "
                               "rename the folder to a label's line or its first comma-separated name")
        index[d.name] = i
    xs, ys = [], []
    for d in dirs:
        files = _images_under(d)
        if not files:
            raise DatasetError(f"eval class folder has no images: {d}")
        for f in files:
            xs.append(_read(f, pre))
            ys.append(index[d.name])
    names = None
    if labels is None and not numbered:
        names = [d.name for d in dirs]          # sorted folder names are the class order
    return EvalSet(np.stack(xs), np.asarray(ys, dtype=np.int64), spec, names)


def _eval_csv(path: Path, pre: Preprocess, spec: str) -> EvalSet:
    """MLPerf Tiny's y_labels.csv layout: file name first, label index last, images beside the file."""
    if not path.is_file():
        raise DatasetError(f"eval csv not found: {path}")
    xs, ys = [], []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row if c.strip()]
            if not row:
                continue
            if len(row) < 2 or not row[-1].lstrip("-").isdigit():
                if n == 1:
                    continue  # a header line
                raise DatasetError(f"{path}:{n}: expected 'file name, label index', got {','.join(row)!r}")
            image = path.parent / row[0]
            if not image.is_file():
                raise DatasetError(f"{path}:{n}: image {image} not found (images go beside the csv)")
            xs.append(_read(image, pre))
            ys.append(int(row[-1]))
    if not xs:
        raise DatasetError(f"eval csv {path} lists no images")
    return EvalSet(np.stack(xs), np.asarray(ys, dtype=np.int64), spec, None)
