"""`open_eval(spec)`: the evaluation set a user names with EVAL=, chosen by the spec's prefix.

Grammar (paths are split at ':'):

  coco:JSON[:IMAGES]      COCO instances JSON; IMAGES defaults to the JSON's folder
  yolo:PATH[:SPLIT]       Ultralytics layout PATH/images[/SPLIT], PATH/labels[/SPLIT]
  masks:IMAGES:MASKS      images and class-index PNG masks with the same stem
  npz:PATH                any-tensor arrays x0.., y0.. and/or labels (see host/evalsets/tensors.py)

A new format is one reader module returning one of the dataclasses in host/evalsets/sets.py and
one entry in READERS.
"""
from __future__ import annotations

from typing import Callable

from host.data.builtin import DatasetError
from host.evalsets.coco import read_coco
from host.evalsets.masks import read_masks
from host.evalsets.sets import EvalSet
from host.evalsets.tensors import read_tensors
from host.evalsets.yolo import read_yolo

# prefix -> (reader taking the spec's ':'-separated parts and spec=, fewest parts, most parts, usage)
READERS: dict[str, tuple[Callable[..., EvalSet], int, int, str]] = {
    "coco": (read_coco, 1, 2, "coco:JSON[:IMAGES]"),
    "yolo": (read_yolo, 1, 2, "yolo:PATH[:SPLIT]"),
    "masks": (read_masks, 2, 2, "masks:IMAGES:MASKS"),
    "npz": (read_tensors, 1, 1, "npz:PATH"),
}


def usage() -> str:
    return ", ".join(u for *_, u in READERS.values())


def open_eval(spec: str) -> EvalSet:
    """Read and check the whole set now, so a bad file fails before a model or a board is used."""
    prefix, sep, rest = spec.partition(":")
    if not sep or prefix not in READERS:
        raise DatasetError(f"EVAL={spec}: unknown evaluation set; use {usage()}")
    reader, fewest, most, form = READERS[prefix]
    parts = rest.split(":")
    if not rest or not fewest <= len(parts) <= most or not all(parts[:fewest]):
        raise DatasetError(f"EVAL={spec}: expected {form}")
    return reader(*[p or None for p in parts], spec=spec)
