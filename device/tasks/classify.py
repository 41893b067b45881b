"""Classification: one output of class scores; report the top k with labels, score eval by top-1
(and top-5 when there are more than 5 classes) and a confusion matrix."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from device.errors import AgentError
from device.tasks.base import Context, Scorer, Task, dequantise, label_for


def output_scores(interp: Any, out_spec: dict) -> np.ndarray:
    """Scores of output 0 as (N, classes), dequantised (argmax is all top-1 needs, but scores are reported)."""
    out = dequantise(interp.get_tensor(out_spec["index"]), out_spec)
    return out.reshape(out.shape[0], -1) if out.ndim > 1 else out.reshape(1, -1)


def top_k(scores: np.ndarray, k: int, labels: Optional[list]) -> list:
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"index": int(i), "label": label_for(int(i), labels), "score": round(float(scores[i]), 6)}
            for i in order]


def matches(in_specs: list, out_specs: list) -> bool:
    """One output holding one score per class: (C,), (1, C) or (1, 1, ..., C)."""
    if len(out_specs) != 1:
        return False
    shape = [max(1, d) for d in out_specs[0]["shape"]]
    return len(shape) >= 1 and shape[-1] > 1 and int(np.prod(shape[:-1])) == 1


def read(interp: Any, out_specs: list) -> np.ndarray:
    """The class scores for the input just run."""
    return output_scores(interp, out_specs[0])[0]


def softmax(logits: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Probabilities from a classifier's logits (float64, shifted by the max: no overflow)."""
    z = beta * np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def answer(scores: np.ndarray, ctx: Context) -> dict:
    """The top k; a model ending at its logits (manifest softmax "host") reports probabilities."""
    if ctx.softmax_beta is not None:
        scores = softmax(scores, ctx.softmax_beta)
    return {"top_k": top_k(scores, ctx.k, ctx.labels)}


def num_classes(out_specs: list) -> int:
    shape = out_specs[0]["shape"]
    return int(np.prod([max(1, d) for d in (shape[1:] if len(shape) > 1 else shape)]))


class ClassScorer(Scorer):
    def __init__(self, out_specs: list, y: np.ndarray, where: str):
        n = num_classes(out_specs)
        if y.min() < 0 or y.max() >= n:
            raise AgentError(f"{where}: labels must be class indices 0..{n - 1} for this model's "
                             f"{n} outputs, got {int(y.min())}..{int(y.max())}", kind="eval_set")
        self.n_classes = n
        self.labels = np.asarray(y).astype(np.int64)
        self.preds: list = []
        self.top5_hits = 0

    def add(self, i: int, raw: np.ndarray) -> None:
        order = np.argsort(-raw, kind="stable")
        self.preds.append(int(order[0]))
        self.top5_hits += int(self.labels[i] in order[:5])

    def summary(self, **measured: Any) -> dict:
        preds, labels, n = np.asarray(self.preds, dtype=np.int64), self.labels, self.n_classes
        confusion = np.zeros((n, n), dtype=np.int64)
        np.add.at(confusion, (labels, preds), 1)
        acc = {"top1": round(float((preds == labels).mean()), 6), "count": int(len(labels)),
               "correct": int((preds == labels).sum()), "num_classes": n,
               "confusion": confusion.tolist()}
        acc.update(measured)
        if n > 5:
            acc["top5"] = round(self.top5_hits / len(labels), 6)
        return acc

    def agreement(self, host: np.ndarray) -> dict:
        host_pred, preds = np.asarray(host).astype(np.int64), np.asarray(self.preds, dtype=np.int64)
        if host_pred.shape != preds.shape:
            return {}
        return {"agreement_with_host": round(float((host_pred == preds).mean()), 6),
                "disagreements": int((host_pred != preds).sum())}


TASK = Task(name="classify", matches=matches, read=read, answer=answer, classes=num_classes, scorer=ClassScorer)
