"""`infer -` and `infer --watch DIR`: inference for pipelines, one JSON line out per input, from
any source in device/sources/registry.py, with one predictor in this process."""
from __future__ import annotations

import json
from typing import IO, Iterable

from device.errors import EXIT_MODEL_FAILED, EXIT_OK, AgentError
from device.serving.predictor import Predictor
from device.sources.base import Item, Source


def _emit(out: IO, record: dict) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def run(pred: Predictor, source: Source, items: Iterable[Item], k: int, out: IO) -> int:
    """Answer every item as it comes; returns 1 when an input failed (0 always for a live source,
    which only ends when stopped), and stops at an item the source could not read."""
    failed = 0
    for item in items:
        if item.error:
            _emit(out, {"input": item.name, "error": item.error})
            return EXIT_MODEL_FAILED
        try:
            tensor, geometry = (pred.fitted_from_file(item.path) if item.path is not None
                                else (pred.tensor_from_array(item.array, item.name), None))
            record = dict(pred.predict(tensor, k, geometry=geometry), input=item.name)
        except AgentError as exc:
            record, failed = {"input": item.name, "error": str(exc)}, failed + 1
        _emit(out, record)
    return EXIT_MODEL_FAILED if failed and not source.live else EXIT_OK
