"""Evaluation sets for any-tensor models: a .npz of inputs and expected outputs or labels.

  features, sensor, ...   inputs by name: the model's input names (Keras / SavedModel names, or the
                          .tflite tensor names, `serving_default_features:0` answering to `features`)
  x0, x1, ...             or inputs by position (`x` alone for a one-input model), in the CONVERTED
                          model's input order (the converter sorts a signature's inputs by name, which
                          `make quantize` prints): names avoid depending on it
  y0, y1, ...             expected outputs in order (e.g. saved from the reference framework)
  labels                  integer class labels, scored as argmax accuracy of output 0

Which array feeds which input is decided once the model is known, by device/contract/feeds.py (the
board's code, also used for CALIB=npz:); a name matching none of the inputs is refused there.
Every array has the sample axis first with the same length N. At least one input is needed and
expected outputs, labels, or both; a bare `y` is refused because it could mean outputs or labels.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from device.contract import feeds
from device.errors import AgentError
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
    ys = {int(m.group(2)): arr for key, arr in arrays.items() for m in [_POSITIONAL.match(key)]
          if m and m.group(1) == "y"}
    outputs = _in_order(ys, "y", p)
    names = feeds.input_keys(list(arrays))
    try:
        feeds.check_names(names, str(p))
    except AgentError as exc:
        raise DatasetError(str(exc)) from None
    if feeds.is_positional(names):
        names = sorted(names, key=lambda k: int(k[1:] or 0))
    inputs = [arrays[k] for k in names]
    labels = arrays.get("labels")
    if not inputs:
        raise DatasetError(f"{p}: no inputs (arrays named after the model's inputs, or x0, x1, ...)")
    if expected and not outputs and labels is None:
        raise DatasetError(f"{p}: nothing to score against (expected outputs y0, y1, ... or labels)")
    n = inputs[0].shape[0] if inputs[0].ndim else 0
    for name, arr in list(zip(names, inputs)) + [(f"y{i}", a) for i, a in enumerate(outputs)]:
        if arr.ndim == 0 or arr.shape[0] != n:
            raise DatasetError(f"{p}: array {name} has shape {arr.shape}; every array needs the same "
                               f"first (sample) axis, {n} as in {names[0]}")
        if arr.dtype.kind not in "biuf":
            raise DatasetError(f"{p}: array {name} is {arr.dtype}; numbers only")
    if n == 0:
        raise DatasetError(f"{p}: no samples ({names[0]} has shape {inputs[0].shape})")
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (n,):
            raise DatasetError(f"{p}: labels must be integers shaped ({n},), got {labels.dtype} {labels.shape}")
        labels = labels.astype(np.int64)
    return TensorSet(spec or f"npz:{p}", inputs, outputs, labels, names)


def _in_order(found: dict, prefix: str, p: Path) -> list:
    if sorted(found) != list(range(len(found))):
        raise DatasetError(f"{p}: arrays {prefix}0, {prefix}1, ... must be numbered without gaps, "
                           f"found {', '.join(f'{prefix}{i}' for i in sorted(found))}")
    return [found[i] for i in range(len(found))]
