"""What a task provides: reading a model's outputs for one input, the fields a prediction reports
(infer, infer -, infer --watch, serve's /infer), and the scoring of an eval set.

Everything else (preprocessing, timing, the interpreter pool, the JSON documents) is the same for
every task, so a new task (detect, segment, keypoints, raw) is one module and one registry line.
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
class Task:
    """One task. read(interpreter, output specs) -> the raw answer for the input just run (batch
    row 0); answer(raw, k, labels) -> the prediction's fields, in the order they are reported;
    scorer(output specs, y, where) -> a Scorer for `eval`."""
    name: str
    read: Callable[[Any, list], Any]
    answer: Callable[[Any, int, Optional[list]], dict]
    scorer: Callable[[list, np.ndarray, str], Scorer]
