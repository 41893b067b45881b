"""Segmentation confusion-matrix scores (checked by hand and against scikit-learn) and tensor scores."""
from __future__ import annotations

import numpy as np
import pytest

from host.data.builtin import DatasetError
from host.metrics.segmentation import accumulate, confusion_matrix, mask_agreement, segmentation_scores
from host.metrics.tensors import accuracy, argmax_agreement, compare_outputs, cosine, score_tensors


def test_scores_by_hand_with_an_ignored_pixel():
    gt = np.array([[0, 0, 1], [1, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    # scored pixels (gt, pred): (0,0) (0,1) (1,1) (1,1) (1,0); the 255 pixel is not scored.
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1, FN 1 -> 1/2; class 2 never seen -> None
    conf = confusion_matrix(pred, gt, num_classes=3)
    assert conf.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    r = segmentation_scores(conf, ["bg", "cat", "dog"])
    assert r["per_class"] == {"bg": pytest.approx(1 / 3), "cat": pytest.approx(1 / 2), "dog": None}
    assert r["miou"] == pytest.approx((1 / 3 + 1 / 2) / 2) and r["pixel_accuracy"] == pytest.approx(3 / 5)
    assert r["pixels"] == 5


def test_accumulated_scores_match_sklearn_on_the_same_pixels():
    from sklearn.metrics import accuracy_score, jaccard_score

    rng = np.random.default_rng(3)
    pairs = []
    for shape in ((7, 9), (5, 4), (12, 3)):
        gt = rng.integers(0, 4, shape).astype(np.uint8)
        gt[rng.random(shape) < 0.2] = 255
        pred = np.where(rng.random(shape) < 0.6, gt % 4, rng.integers(0, 4, shape)).astype(np.uint8)
        pairs.append((pred, gt))
    r = segmentation_scores(accumulate(pairs, num_classes=5))
    g = np.concatenate([gt[gt != 255] for _, gt in pairs])
    p = np.concatenate([pred[gt != 255] for pred, gt in pairs])
    expected = jaccard_score(g, p, labels=[0, 1, 2, 3], average=None)
    assert [r["per_class"][str(c)] for c in range(4)] == pytest.approx(list(expected))
    assert r["per_class"]["4"] is None and r["miou"] == pytest.approx(expected.mean())
    assert r["pixel_accuracy"] == pytest.approx(accuracy_score(g, p))


def test_segmentation_bad_input():
    with pytest.raises(DatasetError, match=r"prediction map is \(3, 2\) but its mask is \(2, 2\)"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((2, 2)), 2)
    with pytest.raises(DatasetError, match="mask has class 7, outside 0..1"):
        confusion_matrix(np.zeros((1, 2)), np.array([[7, 255]]), 2)
    with pytest.raises(DatasetError, match="prediction has class 2, outside 0..1"):
        confusion_matrix(np.array([[2, 0]]), np.zeros((1, 2)), 2)


def test_mask_agreement():
    a = np.array([[1, 2], [3, 4]])
    assert mask_agreement(a, a) == 1.0 and mask_agreement(a, np.array([[1, 0], [3, 0]])) == 0.5
    with pytest.raises(DatasetError):
        mask_agreement(a, a[:1])


def test_cosine_matches_scipy_and_edge_cases():
    from scipy.spatial.distance import cosine as cosine_distance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    assert cosine(a, b) == pytest.approx(1 - cosine_distance(a.ravel(), b.ravel()))
    assert cosine(a, -a) == pytest.approx(-1.0) and cosine(a, 3 * a) == pytest.approx(1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0 and cosine(np.zeros(3), np.ones(3)) == 0.0


def test_compare_outputs_by_hand():
    expected = [np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])]
    got = [np.array([[1.0, 2.5, 2.0], [0.0, -1.0, 0.0]])]
    (r,) = compare_outputs(expected, got)
    assert r["max_abs_error"] == pytest.approx(2.0)                 # 1 - (-1) in sample 1
    assert r["min_sample_cosine"] == pytest.approx(-1.0)            # sample 1 points the other way
    # overall: dot 1 + 5 + 6 - 1 = 11; |e| = sqrt(15), |g| = sqrt(1 + 6.25 + 4 + 1)
    assert r["cosine"] == pytest.approx(11 / np.sqrt(15 * 12.25))
    with pytest.raises(DatasetError, match=r"output 0: expected shape \(2, 3\), the model gave \(3,\)"):
        compare_outputs(expected, [np.zeros(3)])
    with pytest.raises(DatasetError, match="1 expected outputs, the model gave 2"):
        compare_outputs(expected, got * 2)


def test_argmax_agreement_and_accuracy():
    a = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    b = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6], [0.5, 0.5]])   # top classes 1, 1, 1, 0
    assert argmax_agreement(a, b) == pytest.approx(3 / 4)
    assert accuracy(a, np.array([1, 0, 0, 0])) == pytest.approx(3 / 4)
    r = score_tensors([b], expected=[a], labels=np.array([1, 1, 1, 1]))
    assert r["accuracy"] == pytest.approx(3 / 4) and r["outputs"][0]["argmax_agreement"] == pytest.approx(3 / 4)
    assert score_tensors([b], labels=np.array([1, 1, 1, 0])) == {"accuracy": 1.0}
    with pytest.raises(DatasetError, match="labels need an"):
        accuracy(a, np.array([1, 0]))
