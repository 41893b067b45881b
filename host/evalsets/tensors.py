"""Evaluation sets for any-tensor models: a .npz of inputs and expected outputs or labels.

Arrays are matched to the model by POSITION, never by tensor name, because converters rename
tensors (`serving_default_input_1:0`) while the order of a .tflite's inputs and outputs stays (for
a converted Keras model it is its signature's names sorted, which `make quantize` prints):

  x0, x1, ...   the model's inputs in order (`x` alone for a one-input model)
  y0, y1, ...   expected outputs in order (e.g. saved from the reference framework)
  labels        integer class labels, scored as argmax accuracy of output 0

Every array has the sample axis first with the same length N. At least one input is needed and
expected outputs, labels, or both. Any other array name is an error (a typo would otherwise be
dropped silently); a bare `y` is refused because it could mean outputs or labels.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from host.data.builtin import DatasetError, read_npz
from host.evalsets.sets import TensorSet

_POSITIONAL = re.compile(r"^([xy])(\d+)$")


def read_tensors(path: str | Path, spec: str = "", expected: bool = True) -> TensorSet:
    """The arrays of one .npz by the naming convention above, checked for a common sample count.
    `expected=False` reads a calibration set: inputs only, nothing to score against."""
    p = Path(path)
    arrays = read_npz(str(p), "npz eval set")
    if "x_test" in arrays:
        raise DatasetError(f"{p}: has x_test (a classification set of images); an any-tensor set names "
                           f"inputs x0, x1, ... and expected outputs y0, y1, ... or labels")
    if "y" in arrays:
        raise DatasetError(f"{p}: array 'y' is ambiguous: name expected outputs y0, y1, ... or "
                           f"integer class labels 'labels'")
    if "x" in arrays and "x0" in arrays:
        raise DatasetError(f"{p}: has both 'x' and 'x0'; use x for one input or x0, x1, ... for several")
    groups: dict[str, dict[int, np.ndarray]] = {"x": {}, "y": {}}
    for key, arr in arrays.items():
        m = _POSITIONAL.match(key)
        if key == "x":
            groups["x"][0] = arr
        elif m:
            groups[m.group(1)][int(m.group(2))] = arr
        elif key != "labels":
            raise DatasetError(f"{p}: unknown array {key!r} (inputs x0, x1, ...; outputs y0, y1, ...; labels)")
    inputs, outputs = (_in_order(groups[g], g, p) for g in ("x", "y"))
    labels = arrays.get("labels")
    if not inputs:
        raise DatasetError(f"{p}: no inputs (arrays x, or x0, x1, ...)")
    if expected and not outputs and labels is None:
        raise DatasetError(f"{p}: nothing to score against (expected outputs y0, y1, ... or labels)")
    n = inputs[0].shape[0] if inputs[0].ndim else 0
    for name, arr in [(f"x{i}", a) for i, a in enumerate(inputs)] + [(f"y{i}", a) for i, a in enumerate(outputs)]:
        if arr.ndim == 0 or arr.shape[0] != n:
            raise DatasetError(f"{p}: array {name} has shape {arr.shape}; every array needs the same "
                               f"first (sample) axis, {n} as in x0")
        if arr.dtype.kind not in "biuf":
            raise DatasetError(f"{p}: array {name} is {arr.dtype}; numbers only")
    if n == 0:
        raise DatasetError(f"{p}: no samples (x0 has shape {inputs[0].shape})")
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (n,):
            raise DatasetError(f"{p}: labels must be integers shaped ({n},), got {labels.dtype} {labels.shape}")
        labels = labels.astype(np.int64)
    return TensorSet(spec or f"npz:{p}", inputs, outputs, labels)


def _in_order(found: dict[int, np.ndarray], prefix: str, p: Path) -> list[np.ndarray]:
    if sorted(found) != list(range(len(found))):
        raise DatasetError(f"{p}: arrays {prefix}0, {prefix}1, ... must be numbered without gaps, "
                           f"found {', '.join(f'{prefix}{i}' for i in sorted(found))}")
    return [found[i] for i in range(len(found))]
