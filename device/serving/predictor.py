"""A loaded model that answers one input at a time, for the long-running modes (serve, infer -,
infer --watch) and infer over files: a pool of interpreters, the preprocessing, the labels, the
task that reads the outputs, and what /info reports.

TFLite interpreters are not thread-safe, so a caller borrows one from the pool per inference.
"""
from __future__ import annotations

import io
import queue
import time
from typing import Any, Optional

import numpy as np

from device import __version__
from device.contract import inputs
from device.errors import AgentError
from device.runtimes import graph, modelfile, registry as runtime
from device.tasks import registry as tasks
from device.tasks.base import Context, image_hw, read_all
from device.tasks.classify import output_scores  # the host's evaluation reads scores with it

__all__ = ["Busy", "Predictor", "output_scores"]


class Busy(Exception):
    """Every interpreter stayed busy for the whole wait."""


class Predictor:
    """predict(tensor, k) -> the task's answer fields, then the task, latency_us (invoke),
    postprocess_us (decoding, NMS, mask resizing) and the model's name."""

    def __init__(self, path: str, rt: runtime.RuntimeInfo, workers: int = 1, threads: int = 1,
                 manifest: Optional[dict] = None, labels: Optional[list] = None,
                 pixel_scale: Optional[float] = None, pixel_offset: Optional[float] = None,
                 task: Optional[str] = None, threshold: Optional[float] = None, iou: Optional[float] = None):
        self.meta = modelfile.describe(path)
        module = runtime.load_module(rt)
        self.pool: queue.Queue = queue.Queue()
        for _ in range(workers):
            interp = runtime.make_interpreter(module, path, threads)
            runtime.allocate(interp)
            self.pool.put(interp)
        interp = self.pool.queue[0]
        self.in_specs = [graph.tensor_spec(d) for d in interp.get_input_details()]
        self.out_specs = [graph.tensor_spec(d) for d in interp.get_output_details()]
        if len(self.in_specs) != 1:
            raise AgentError(f"this mode needs a single-input model, this one has {len(self.in_specs)}",
                             kind="input")
        self.task, note = tasks.choose(task or (manifest or {}).get("task"), self.in_specs, self.out_specs)
        self.notes = [note] if note else []
        # a non-image input (audio features, a sensor window) takes .npy tensors only
        self.pre = inputs.preprocess_for(self.in_specs[0], manifest, pixel_scale, pixel_offset) \
            if image_hw(self.in_specs) or (manifest or {}).get("input") else None
        self.labels = labels or (manifest or {}).get("class_names")
        warning = tasks.label_warning(self.task, self.out_specs, self.labels, model=path)
        if warning:
            self.notes.append(warning)
        self.threshold, self.iou = threshold, iou
        where = (manifest or {}).get("softmax") or {}
        self.softmax_beta = float(where.get("beta", 1.0)) if where.get("where") == "host" else None
        self.delegation = graph.analyse(interp)
        self.runtime = {"name": rt.name, "version": rt.version}
        self.workers = self.pool.qsize()

    def info(self) -> dict:
        return {"agent_version": __version__, "model": self.meta, "runtime": self.runtime, "task": self.task.name,
                "inputs": [graph.public_spec(s) for s in self.in_specs],
                "outputs": [graph.public_spec(s) for s in self.out_specs],
                "preprocess": self.pre.__dict__ if self.pre else None, "labels": self.labels,
                "ops_total": self.delegation["ops_total"], "ops_delegated": self.delegation["ops_delegated"],
                "workers": self.workers}

    # ------------------------------------------------------------ inputs

    def _need_pre(self, label: str) -> inputs.Preprocess:
        if self.pre is None:
            spec = self.in_specs[0]
            raise AgentError(f"{label}: this model's input {spec['dtype']}{list(spec['shape'])} is not an image; "
                             "give it a .npy tensor", kind="input")
        return self.pre

    def fitted_from_bytes(self, data: bytes, label: str = "body") -> tuple:
        """An image or .npy payload -> (batch-1 input tensor, Geometry or None for a .npy)."""
        if data.startswith(b"\x93NUMPY"):
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception:
                raise AgentError(f"{label}: looks like .npy but cannot be read", kind="input") from None
            return self.tensor_from_array(arr, label), None
        pre = self._need_pre(label)
        pixels, geometry = inputs.decode_image_fitted(data, pre, label)
        return inputs.pixels_to_input(pixels[None], self.in_specs[0], pre), geometry

    def fitted_from_file(self, path: str) -> tuple:
        """An image or .npy file -> (batch-1 input tensor, Geometry or None for a .npy)."""
        if path.lower().endswith(".npy"):
            return self.tensor_from_array(inputs.load_npy(path), path), None
        pre = self._need_pre(path)
        pixels, geometry = inputs.read_image_fitted(path, pre)
        return inputs.pixels_to_input(pixels[None], self.in_specs[0], pre), geometry

    def tensor_from_bytes(self, data: bytes, label: str = "body") -> np.ndarray:
        return self.fitted_from_bytes(data, label)[0]

    def tensor_from_file(self, path: str) -> np.ndarray:
        return self.fitted_from_file(path)[0]

    def tensor_from_array(self, arr: np.ndarray, label: str) -> np.ndarray:
        if self.pre is None:
            spec = self.in_specs[0]
            return inputs.check_fits(arr.reshape([max(1, d) for d in spec["shape"]])
                                     if arr.size == int(np.prod([max(1, d) for d in spec["shape"]])) else arr,
                                     spec, label)
        return inputs.array_to_tensor(arr, self.in_specs[0], self.pre, label)

    # ------------------------------------------------------------ running

    def _borrow(self, wait: Optional[float]) -> Any:
        try:
            return self.pool.get(timeout=wait)
        except queue.Empty:
            raise Busy("all workers are busy") from None

    def run(self, tensor: np.ndarray, wait: Optional[float] = None) -> tuple:
        """(every output dequantised (copies), invoke time in us): the service's self-check."""
        interp = self._borrow(wait)
        try:
            interp.set_tensor(self.in_specs[0]["index"], tensor)
            t0 = time.perf_counter_ns()
            runtime.invoke(interp)
            latency = (time.perf_counter_ns() - t0) / 1000.0
            return read_all(interp, self.out_specs), latency
        finally:
            self.pool.put(interp)

    def context(self, k: int, geometry: Any = None, threshold: Optional[float] = None) -> Context:
        spec = self.in_specs[0]["shape"]
        hw = (self.pre.height, self.pre.width) if self.pre else (spec[1] if len(spec) > 1 else 1,
                                                                  spec[2] if len(spec) > 2 else 1)
        return Context(k=k, labels=self.labels, threshold=self.threshold if threshold is None else threshold,
                       iou=self.iou, geometry=geometry, input_hw=hw, softmax_beta=self.softmax_beta)

    def predict(self, tensor: np.ndarray, k: int, wait: Optional[float] = None, geometry: Any = None,
                threshold: Optional[float] = None) -> dict:
        return self.predict_full(tensor, k, wait, geometry, threshold)[0]

    def predict_full(self, tensor: np.ndarray, k: int, wait: Optional[float] = None, geometry: Any = None,
                     threshold: Optional[float] = None, mask: bool = False) -> tuple:
        """(the prediction, the class map when mask=True and the task has one, else None).

        The outputs are read and decoded while this call holds the interpreter, so a task may read
        them in place; postprocess_us is that reading and decoding."""
        ctx = self.context(k, geometry, threshold)
        interp = self._borrow(wait)
        raw = None
        try:
            interp.set_tensor(self.in_specs[0]["index"], tensor)
            t0 = time.perf_counter_ns()
            runtime.invoke(interp)
            t1 = time.perf_counter_ns()
            raw = self.task.read(interp, self.out_specs)
            fields = self.task.answer(raw, ctx)
            t2 = time.perf_counter_ns()
            class_map = self.task.mask(raw, ctx) if mask else None
        finally:
            raw = None      # no view into the interpreter may outlive the borrow (LiteRT refuses to invoke)
            self.pool.put(interp)
        return dict(fields, task=self.task.name, latency_us=round((t1 - t0) / 1000.0, 3),
                    postprocess_us=round((t2 - t1) / 1000.0, 3), model=self.meta["name"]), class_map
