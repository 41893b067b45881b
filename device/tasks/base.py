"""What a task provides: knowing its own output layout, reading a model's outputs for one input,
the fields a prediction reports (infer, infer -, infer --watch, serve's /infer), and the scoring
of an eval set.

Everything else (preprocessing, timing, the interpreter pool, the JSON documents) is the same for
every task, so a new task is one module and one registry line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np


class Scorer:
    """Accumulates an eval set's answers one input at a time (a big set never becomes one array).

    A task's scorer is made from the model's output specs, the eval set's labels `y` and where they
    came from (for error messages), and refuses labels the model cannot answer.
    """

    def add(self, i: int, raw: Any) -> None:
        """The task's raw answer for eval item i."""
        raise NotImplementedError

    def summary(self, **measured: Any) -> dict:
        """The `accuracy` fields; `measured` (preprocess, latency) is placed where the schema has it."""
        raise NotImplementedError

    def agreement(self, host: np.ndarray) -> dict:
        """Fields comparing this run with the host's own answers for the same set ({} if not comparable)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Context:
    """What turning raw outputs into an answer may need besides the outputs themselves.

    `geometry` (device.contract.inputs.Geometry) puts model-input pixels back on the source image;
    without it (a .npy input) coordinates stay in model-input pixels. `threshold` None is the
    task's own default. `softmax_beta` is set when the manifest says the classifier's softmax was
    taken out of the graph (its outputs are logits; the reported scores are computed here)."""
    k: int = 5
    labels: Optional[list] = None
    threshold: Optional[float] = None
    iou: Optional[float] = None       # NMS IoU; None: the head's family default (detect.py)
    geometry: Any = None
    input_hw: tuple = (1, 1)          # the model input's (height, width)
    softmax_beta: Optional[float] = None   # a classifier ending at its logits: probabilities = softmax(beta * x)


@dataclass(frozen=True)
class Task:
    """One task.

    matches(input specs, output specs) -> whether the outputs have this task's layout;
    read(interpreter, output specs) -> the raw answer for the input just run (batch row 0);
    answer(raw, Context) -> the prediction's fields, in the order they are reported;
    classes(output specs) -> how many classes the model knows (None when the layout does not say);
    file_classes(model bytes, output specs) -> the same from the graph, where the shapes do not
    say it (a detector's post-processing op knows its class count);
    mask(raw, Context) -> the class map at the image's size (segment; None for the others), for
    --mask_out and drawing;
    scorer(output specs, y, where) -> a Scorer for `eval`, None when the board does not score it
    (the host scores the board's predictions instead)."""
    name: str
    matches: Callable[[list, list], bool]
    read: Callable[[Any, list], Any]
    answer: Callable[[Any, Context], dict]
    classes: Callable[[list], Optional[int]] = lambda out_specs: None
    file_classes: Callable[[bytes, list], Optional[int]] = lambda model, out_specs: None
    scorer: Optional[Callable[[list, np.ndarray, str], Scorer]] = None
    mask: Callable[[Any, Context], Optional[np.ndarray]] = lambda raw, ctx: None   # segment: the class map


def dequantise(arr: np.ndarray, spec: dict) -> np.ndarray:
    """A tensor's values as float32 (int8/uint8 outputs through their scale and zero point)."""
    arr = np.asarray(arr)
    out = arr.astype(np.float32, copy=False)
    q = spec.get("quantization")
    if q and q.get("scale") and arr.dtype.kind in "iu":
        out = (out - np.float32(q["zero_point"])) * np.float32(q["scale"])
    return out


def read_all(interp: Any, out_specs: list, view: bool = False) -> list:
    """Every output of the input just run, batch row 0, dequantised.

    view=True reads float outputs in place (no copy: a 2,100 x 84 YOLO head is 700 KB, and copying
    it costs more than decoding it); such arrays are only valid until the interpreter runs again,
    so the caller must be done with them before it gives the interpreter back."""
    get = (lambda i: interp.tensor(i)()) if view else interp.get_tensor
    return [dequantise(get(s["index"]), s)[0] if len(s["shape"]) > 1 else dequantise(get(s["index"]), s)
            for s in out_specs]


def label_for(class_id: int, labels: Optional[list]) -> str:
    """A class id's name. Label files come with or without a leading `???` placeholder line (the
    TF Object Detection API's background slot); with it, class i is line i + 1."""
    if not labels:
        return str(class_id)
    i = class_id + 1 if labels[0] == "???" else class_id
    return labels[i] if 0 <= i < len(labels) else str(class_id)


def label_count(labels: Optional[list]) -> int:
    """How many classes a label file names (a leading `???` placeholder is not one)."""
    if not labels:
        return 0
    return len(labels) - (1 if labels[0] == "???" else 0)


def image_hw(in_specs: list) -> Optional[tuple]:
    """(H, W) of a single NHWC image input, else None."""
    if len(in_specs) != 1:
        return None
    shape = list(in_specs[0]["shape"])
    if len(shape) == 4 and shape[3] in (1, 3):
        return shape[1], shape[2]
    if len(shape) == 3:
        return shape[1], shape[2]
    return None
