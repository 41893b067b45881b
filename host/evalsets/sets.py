"""The in-memory shapes every evaluation-set reader produces, one small dataclass per kind of task.

Detection sets from any labelling tool become one COCO-style dict, because pycocotools is the code
the field scores detections and keypoints with: converting once at read time means the metrics
never see where a set came from. Readers only read: they create no files, so a bad set leaves
nothing behind, and they raise `DatasetError` with one line naming the file and the entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from host.data.builtin import DatasetError


class ImageEntry(NamedTuple):
    image_id: int
    path: Path
    width: int
    height: int


@dataclass
class DetectionSet:
    """Boxes (and, when the COCO file has them, keypoints) per image.

    `coco` is a COCO-format dict (images, annotations, categories) that pycocotools accepts as is:
    annotation ids are renumbered 1.. because COCOeval treats an id of 0 as "unmatched"; the id
    from the file is kept as `source_id`.
    """

    spec: str
    images: list[ImageEntry]
    coco: dict
    category_names: list[str]          # in category-id order
    category_ids: list[int]            # the same order
    keypoint_names: list[str] = field(default_factory=list)   # of the keypoint category, if any

    kind = "detect"

    @property
    def has_keypoints(self) -> bool:
        return any("keypoints" in a for a in self.coco["annotations"])

    def summary(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "images": len(self.images),
                "annotations": len(self.coco["annotations"]), "categories": self.category_names,
                "keypoints": self.has_keypoints}


@dataclass
class MaskSet:
    """Pairs of (image, class-index mask) with the same stem; mask value `ignore` is not scored."""

    spec: str
    pairs: list[tuple[Path, Path]]
    ignore: int = 255

    kind = "segment"

    def summary(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "images": len(self.pairs), "ignore": self.ignore}


@dataclass
class TensorSet:
    """Arrays for any-tensor models: inputs (in the file's order, `input_names` their array names:
    model input names, or x0, x1, ... by position), expected outputs by position, or labels."""

    spec: str
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    labels: np.ndarray | None
    input_names: list[str] = field(default_factory=list)

    kind = "raw"

    @property
    def n(self) -> int:
        return int(self.inputs[0].shape[0])

    def summary(self) -> dict:
        return {"kind": self.kind, "spec": self.spec, "samples": self.n,
                "inputs": [list(a.shape[1:]) for a in self.inputs],
                "outputs": [list(a.shape[1:]) for a in self.outputs], "labels": self.labels is not None}


EvalSet = Union[DetectionSet, MaskSet, TensorSet]


def image_size(path: Path, what: str) -> tuple[int, int]:
    """(width, height) from the file header only: a large set is sized without decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{what}: cannot read image {path} ({type(exc).__name__})") from None


def number(value, what: str) -> float:
    """A finite JSON/text number (bools are not numbers here), or one DatasetError line."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def integer(value, what: str) -> int:
    """A JSON integer (3.0 is accepted, 3.5 and "3" are not), or one DatasetError line."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer()):
        raise DatasetError(f"{what}: expected an integer, got {value!r}")
    return int(value)
