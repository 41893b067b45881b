"""The frame pipeline follows the served model: `serve --follow LINK --source SPEC` hands frames
to a new release between two frames (device/video/pipeline.py's `current`), as /infer requests do.
Real predictors on real task models; the frames are generated arrays."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from device.runtimes import registry as runtime
from device.serving.predictor import Predictor
from device.sources.base import Item
from device.video import pipeline
from tests.cached_models import device_models, task_models

pytestmark = pytest.mark.timeout(120)
ANSWER_KEYS = ("top_k", "detections", "segmentation", "keypoints", "poses", "outputs")


class Sink:
    def __init__(self):
        self.records: list = []

    def frame(self, record: dict, picture) -> None:
        pass

    def done(self, record: dict) -> None:
        self.records.append(record)


def _frames(n: int) -> list:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(n)]


def _run(frames: list, first, current=None) -> list:
    sink = Sink()
    items = iter([Item(f"f[{i}]", array=a) for i, a in enumerate(frames)])
    pipe = pipeline.Pipeline(first, items, pipeline.Settings(k=3), [sink], threading.Event(), current=current)
    assert pipe.run() is None
    return sink.records


def _answer(record: dict) -> dict:
    return {k: record[k] for k in ANSWER_KEYS if k in record}


@pytest.fixture(scope="module")
def predictors():
    rt = runtime.resolve(None)
    return {name: Predictor(task_models()[name], rt) for name in ("yolo", "segment", "raw")}


def _switching(before, after, at: int):
    """current(): `before` for the first `at` frames, then `after` (the link moved)."""
    calls = {"n": 0}

    def current():
        calls["n"] += 1
        return before if calls["n"] <= at else after
    return current


def test_frames_after_a_switch_are_answered_by_the_new_model(predictors):
    frames = _frames(12)
    records = _run(frames, predictors["yolo"], _switching(predictors["yolo"], predictors["segment"], 6))
    alone = {name: _run(frames, predictors[name]) for name in ("yolo", "segment")}
    assert [_answer(r) for r in records[:6]] == [_answer(r) for r in alone["yolo"][:6]]
    assert [_answer(r) for r in records[6:]] == [_answer(r) for r in alone["segment"][6:]]
    assert "detections" in records[5] and "segmentation" in records[6]


def test_a_switch_to_a_model_without_an_image_input_fails_frames_and_keeps_running(predictors):
    records = _run(_frames(6), predictors["yolo"], _switching(predictors["yolo"], predictors["raw"], 2))
    assert len(records) == 6 and all("detections" in r for r in records[:2])
    assert all("image input" in r["error"] for r in records[2:])


def test_without_current_the_first_model_answers_every_frame():
    rt = runtime.resolve(None)
    pred = Predictor(device_models()["fp32"], rt)
    records = _run(_frames(3), pred)
    assert len(records) == 3 and all(r["top_k"] for r in records)
