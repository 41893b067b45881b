"""The task registry and the classify task: what infer/serve report and how eval scores."""
from __future__ import annotations

import json

import numpy as np
import pytest

from device.errors import EXIT_USAGE, AgentError
from device.tasks import base, classify, registry


def test_the_five_tasks_and_the_default():
    assert sorted(registry.TASKS) == ["classify", "detect", "keypoints", "raw", "segment"]
    assert registry.DEFAULT == "classify"
    assert registry.get() is classify.TASK and all(isinstance(t, base.Task) for t in registry.TASKS.values())


def test_an_unknown_task_is_refused_in_one_line():
    with pytest.raises(AgentError) as err:
        registry.get("pose")
    assert str(err.value) == "unknown task 'pose' (choose from keypoints, segment, detect, classify, raw)"
    assert err.value.exit_code == EXIT_USAGE and err.value.kind == "usage"


def test_a_predictor_refuses_a_forced_task_the_outputs_do_not_fit(models):
    from device.runtimes import registry as runtimes
    from device.serving.predictor import Predictor
    with pytest.raises(AgentError, match=r"--task segment: this model's outputs \(.*\[1, \d+\]\) are not a segment layout") as err:
        Predictor(models["int8"], runtimes.resolve(), task="segment")
    assert err.value.exit_code == EXIT_USAGE


def test_answer_is_top_k_with_labels_in_score_order_ties_by_index():
    scores = np.array([0.1, 0.7, 0.1, 0.05, 0.05], dtype=np.float32)
    got = classify.answer(scores, base.Context(k=3, labels=["a", "b"]))
    assert json.dumps(got) == ('{"top_k": [{"index": 1, "label": "b", "score": 0.7}, '
                               '{"index": 0, "label": "a", "score": 0.1}, {"index": 2, "label": "2", "score": 0.1}]}')


class _Interp:
    def __init__(self, out):
        self.out = out

    def get_tensor(self, index):
        return self.out


def test_read_dequantises_output_zero():
    spec = {"index": 0, "shape": [1, 3], "quantization": {"scale": 0.5, "zero_point": 10}}
    got = classify.read(_Interp(np.array([[10, 12, 14]], dtype=np.int8)), [spec])
    assert got.tolist() == [0.0, 1.0, 2.0]


def test_scorer_counts_top1_top5_confusion_and_agreement():
    spec = [{"index": 0, "shape": [1, 6]}]
    y = np.array([0, 1, 2])
    scorer = classify.TASK.scorer(spec, y, "set.npz")
    for i, best in enumerate([0, 1, 5]):   # the last one is wrong; its label is second: a top-5 hit
        s = np.zeros(6, dtype=np.float32)
        s[best], s[y[i]] = 1.0, max(s[y[i]], 0.5)
        scorer.add(i, s)
    acc = scorer.summary(preprocess={"p": 1}, latency={"l": 2})
    assert list(acc) == ["top1", "count", "correct", "num_classes", "confusion", "preprocess", "latency", "top5"]
    assert acc["top1"] == round(2 / 3, 6) and acc["correct"] == 2 and acc["top5"] == 1.0
    assert acc["confusion"][2][5] == 1 and acc["confusion"][0][0] == 1
    assert scorer.agreement(np.array([0, 1, 2])) == {"agreement_with_host": round(2 / 3, 6), "disagreements": 1}
    assert scorer.agreement(np.array([0, 1])) == {}


def test_scorer_refuses_labels_the_model_cannot_answer():
    with pytest.raises(AgentError, match=r"set.npz: labels must be class indices 0..2 .* got 0..3"):
        classify.TASK.scorer([{"index": 0, "shape": [1, 3]}], np.array([0, 3]), "set.npz")
