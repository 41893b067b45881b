"""The frame pipeline: a capture thread reads the source; the main path takes a frame,
preprocesses it, runs the model, decodes the answer, draws it and hands it to the sinks.

Between the two sits one slot. A paced source (a camera, a stream, a file at its own pace) never
waits: a frame the main path has not taken yet is replaced by the newer one and counted as
dropped, so a live picture never lags behind. A file read as fast as possible waits for the main
path instead, and no frame is dropped. Every frame the source delivers is answered, dropped or
counted corrupt: frames + dropped + corrupt + failed = what the source delivered.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np

from device.contract import inputs
from device.errors import EXIT_USAGE, AgentError, one_line
from device.sources.base import Item
from device.video.stats import Stats

POLL = 0.1      # seconds: how often a waiting thread looks at the stop flag


@dataclass
class Settings:
    k: int = 5
    max_rate: Optional[float] = None      # answer at most this many frames per second
    max_frames: Optional[int] = None      # stop after this many answered frames
    paced: bool = False                   # newest frame wins (else the capture waits)
    draw: bool = False                    # a sink wants the annotated picture


class Slot:
    """The one-frame hand-over between the capture thread and the main path."""

    def __init__(self, paced: bool, stop: threading.Event, stats: Stats):
        self.cond = threading.Condition()
        self.item: Optional[Item] = None
        self.ended = False
        self.error: Optional[AgentError] = None
        self.paced, self.stop, self.stats = paced, stop, stats

    def put(self, item: Item) -> None:
        with self.cond:
            if self.item is not None:
                if self.paced:
                    self.stats.count("dropped")
                else:
                    while self.item is not None and not self.stop.is_set():
                        self.cond.wait(POLL)
            self.item = item
            self.cond.notify_all()

    def end(self, error: Optional[AgentError] = None) -> None:
        with self.cond:
            self.ended, self.error = True, error
            self.cond.notify_all()

    def take(self) -> Optional[Item]:
        """The newest frame, or None when the source ended (or stop was set)."""
        with self.cond:
            while self.item is None and not self.ended and not self.stop.is_set():
                self.cond.wait(POLL)
            item, self.item = self.item, None
            self.cond.notify_all()
            return None if self.stop.is_set() else item


def _capture(items: Iterator[Item], slot: Slot) -> None:
    error = None
    try:
        for item in items:
            if slot.stop.is_set():
                break
            slot.put(item)
    except AgentError as exc:
        error = exc
    except Exception as exc:    # a capture library's failure: one line, never a traceback
        error = AgentError(f"source failed: {type(exc).__name__}: {one_line(exc)}", kind="source")
    finally:
        close = getattr(items, "close", None)
        if close:
            close()             # a generator's finally releases the camera / file
        slot.end(error)


def check_model(pred: Any) -> None:
    """Frames need a model with one image input (a usage error before any frame is read)."""
    if pred.pre is None:
        spec = pred.in_specs[0]
        raise AgentError(f"--source needs a model with an image input; this one takes {spec['dtype']}"
                         f"{list(spec['shape'])}", EXIT_USAGE, "usage")


def frame_tensor(pred: Any, arr: np.ndarray) -> tuple:
    """An RGB frame of any size -> (the model's input tensor, its Geometry): the same fitting as
    an image file, so a frame and the same pixels saved as PNG give the same answer."""
    pixels = inputs.fit_pixels(arr, pred.pre)
    return inputs.pixels_to_input(pixels[None], pred.in_specs[0], pred.pre), \
        inputs.geometry_for(arr.shape[1], arr.shape[0], pred.pre)


class Pipeline:
    """run() answers frames until the source ends, stop is set or max_frames; returns the
    source's error (it gave up) or None. sinks: objects with frame(record, picture) (the
    answer and, with settings.draw, the annotated PIL image: encode and write it) and done(record)
    (the answer with its stage times and latency, or an error record)."""

    def __init__(self, pred: Any, items: Iterator[Item], settings: Settings, sinks: list,
                 stop: Optional[threading.Event] = None, stats: Optional[Stats] = None,
                 current: Optional[Callable[[], Any]] = None):
        """`current`: the model to answer the next frame with, asked once per frame (`serve
        --follow` hands over to a new release between two frames); by default always `pred`."""
        self.pred, self.settings, self.sinks = pred, settings, sinks
        self.current = current or (lambda: pred)
        self.unfit: Optional[str] = None    # why the current model cannot take frames (a switched-to one)
        self.stop = stop or threading.Event()
        self.stats = stats or Stats()
        self.slot = Slot(settings.paced, self.stop, self.stats)
        self.thread = threading.Thread(target=_capture, args=(items, self.slot), daemon=True,
                                       name="edgekit-capture")

    def run(self) -> Optional[AgentError]:
        s = self.settings
        self.stats.start()
        self.thread.start()
        due = time.perf_counter()
        try:
            while not self.stop.is_set():
                if s.max_rate:
                    if self.stop.wait(max(0.0, due - time.perf_counter())):
                        break
                    due = max(due + 1.0 / s.max_rate, time.perf_counter())
                t0 = time.perf_counter()
                item = self.slot.take()
                if item is None:
                    break
                self._answer(item, time.perf_counter() - t0)
                if s.max_frames and self.stats.counts["frames"] >= s.max_frames:
                    break
        finally:
            self.stop.set()
            self.thread.join(timeout=1.0)
        return self.slot.error

    def _answer(self, item: Item, waited: float) -> None:
        if item.corrupt or item.array is None:
            self.stats.count("corrupt")
            return
        pred = self.current()
        if pred is not self.pred:           # a new release: it must take frames too, or each frame fails
            self.pred = pred
            try:
                check_model(pred)
                self.unfit = None
            except AgentError as exc:
                self.unfit = str(exc)
        t0 = time.perf_counter()
        try:
            if self.unfit:
                raise AgentError(self.unfit)
            tensor, geometry = frame_tensor(pred, item.array)
            t1 = time.perf_counter()
            result, class_map = pred.predict_full(tensor, self.settings.k, geometry=geometry,
                                                  mask=self.settings.draw)
        except AgentError as exc:
            if exc.exit_code == EXIT_USAGE and not self.unfit:
                raise
            self.stats.count("failed")
            for sink in self.sinks:
                sink.done({"input": item.name, "error": str(exc)})
            return
        t2 = time.perf_counter()
        result.pop("model", None)
        stages = {"capture_wait": waited, "decode": item.decode_s, "preprocess": t1 - t0,
                  "invoke": result["latency_us"] / 1e6, "postprocess": result["postprocess_us"] / 1e6}
        picture = None
        if self.settings.draw:
            from device.tasks import draw
            picture = draw.annotate(draw.from_array(item.array), result, class_map)
        record = dict({"input": item.name}, **result)
        for sink in self.sinks:
            sink.frame(record, picture)
        t3 = time.perf_counter()
        stages["draw"] = t3 - t2
        latency = t3 - (item.captured or t0)
        record["stages_ms"] = {k: round(v * 1000.0, 3) for k, v in stages.items()}
        record["latency_ms"] = round(latency * 1000.0, 3)
        self.stats.frame(stages, latency)
        for sink in self.sinks:
            sink.done(record)
