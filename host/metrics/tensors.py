"""Scores for any-tensor models: how close each output is to the expected one, and label accuracy.

Max absolute error catches one badly wrong value (a saturated int8 output); cosine similarity says
whether the output points the same way regardless of scale, which is what a quantised model
should keep. Both are computed per output, in float64, over all samples.
"""
from __future__ import annotations

import numpy as np

from host.data.builtin import DatasetError


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened; 1.0 for two all-zero arrays (they agree), 0.0 for one."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(expected: list[np.ndarray], got: list[np.ndarray]) -> list[dict]:
    """Per output: max_abs_error, cosine over all samples, and the worst single sample's cosine."""
    if len(expected) != len(got):
        raise DatasetError(f"the set has {len(expected)} expected outputs, the model gave {len(got)}")
    out = []
    for i, (e, g) in enumerate(zip(expected, got)):
        e, g = np.asarray(e, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if e.shape != g.shape:
            raise DatasetError(f"output {i}: expected shape {e.shape}, the model gave {g.shape}")
        out.append({"max_abs_error": float(np.max(np.abs(e - g))) if e.size else 0.0,
                    "cosine": cosine(e, g),
                    "min_sample_cosine": min((cosine(e[k], g[k]) for k in range(len(e))), default=1.0)})
    return out


def argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of samples whose top class is the same in two (N, ..., classes) outputs."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise DatasetError(f"outputs differ in shape: {a.shape} and {b.shape}")
    return float(np.mean(a.argmax(axis=-1) == b.argmax(axis=-1)))


def accuracy(output: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose top class (last axis of an (N, classes) output) is the label."""
    output, labels = np.asarray(output), np.asarray(labels).ravel()
    if output.ndim != 2 or output.shape[0] != labels.shape[0]:
        raise DatasetError(f"labels need an (N, classes) output with N = {labels.shape[0]}, got {output.shape}")
    return float(np.mean(output.argmax(axis=1) == labels))


def score_tensors(got: list[np.ndarray], expected: list[np.ndarray] | None = None,
                  labels: np.ndarray | None = None) -> dict:
    """Everything a tensor set can say about a model's outputs `got`: per-output closeness to the
    expected outputs and argmax agreement with them (when given), accuracy of output 0 (with labels)."""
    result: dict = {}
    if expected:
        result["outputs"] = compare_outputs(expected, got)
        for r, e, g in zip(result["outputs"], expected, got):
            if np.asarray(e).ndim >= 2:
                r["argmax_agreement"] = argmax_agreement(e, g)
    if labels is not None:
        if not got:
            raise DatasetError("labels given but the model gave no outputs")
        result["accuracy"] = accuracy(got[0], labels)
    return result
