"""A loaded model that answers one input at a time, for the long-running modes (serve, infer -,
infer --watch): a pool of interpreters, the preprocessing, the labels, and what /info reports.

TFLite interpreters are not thread-safe, so a caller borrows one from the pool per inference.
"""
from __future__ import annotations

import io
import queue
import time
from typing import Optional

import numpy as np

from device import __version__

from device.runtimes import graph

from device.contract import inputs

from device.runtimes import modelfile

from device.runtimes import registry as runtime
from device.errors import AgentError
from device.tasks import registry as tasks
from device.tasks.classify import output_scores  # the host's evaluation reads scores with it

__all__ = ["Busy", "Predictor", "output_scores"]


class Busy(Exception):
    """Every interpreter stayed busy for the whole wait."""


class Predictor:
    """predict(tensor, k) -> the task's answer fields, then latency_us and the model's name."""

    def __init__(self, path: str, rt: runtime.RuntimeInfo, workers: int = 1, threads: int = 1,
                 manifest: Optional[dict] = None, labels: Optional[list] = None,
                 pixel_scale: Optional[float] = None, pixel_offset: Optional[float] = None,
                 task: str = tasks.DEFAULT):
        self.task = tasks.get(task)
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
        self.pre = inputs.preprocess_for(self.in_specs[0], manifest, pixel_scale, pixel_offset)
        self.labels = labels or (manifest or {}).get("class_names")
        self.delegation = graph.analyse(interp)
        self.runtime = {"name": rt.name, "version": rt.version}
        self.workers = self.pool.qsize()

    def info(self) -> dict:
        return {"agent_version": __version__, "model": self.meta, "runtime": self.runtime,
                "inputs": [graph.public_spec(s) for s in self.in_specs],
                "outputs": [graph.public_spec(s) for s in self.out_specs],
                "preprocess": self.pre.__dict__, "labels": self.labels,
                "ops_total": self.delegation["ops_total"], "ops_delegated": self.delegation["ops_delegated"],
                "workers": self.workers}

    def tensor_from_bytes(self, data: bytes, label: str = "body") -> np.ndarray:
        """An image or .npy payload -> a batch-1 input tensor (AgentError when it is neither)."""
        if data.startswith(b"\x93NUMPY"):
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except Exception:
                raise AgentError(f"{label}: looks like .npy but cannot be read", kind="input") from None
            return inputs.array_to_tensor(arr, self.in_specs[0], self.pre, label)
        return inputs.pixels_to_input(inputs.decode_image_bytes(data, self.pre, label)[None],
                                      self.in_specs[0], self.pre)

    def tensor_from_file(self, path: str) -> np.ndarray:
        return inputs.file_to_tensor(path, self.in_specs[0], self.pre)

    def tensor_from_array(self, arr: np.ndarray, label: str) -> np.ndarray:
        return inputs.array_to_tensor(arr, self.in_specs[0], self.pre, label)

    def predict(self, tensor: np.ndarray, k: int, wait: Optional[float] = None) -> dict:
        try:
            interp = self.pool.get(timeout=wait)
        except queue.Empty:
            raise Busy("all workers are busy") from None
        try:
            interp.set_tensor(self.in_specs[0]["index"], tensor)
            t0 = time.perf_counter_ns()
            runtime.invoke(interp)
            latency = (time.perf_counter_ns() - t0) / 1000.0
            raw = self.task.read(interp, self.out_specs)
        finally:
            self.pool.put(interp)
        return dict(self.task.answer(raw, k, self.labels), latency_us=round(latency, 3), model=self.meta["name"])
