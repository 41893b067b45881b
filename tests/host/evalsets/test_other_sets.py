"""Mask sets, any-tensor npz sets and the EVAL= spec registry."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from host.data.builtin import DatasetError
from host.evalsets.masks import read_mask, read_masks
from host.evalsets.registry import open_eval
from host.evalsets.sets import DetectionSet, MaskSet, TensorSet
from host.evalsets.tensors import read_tensors


def _mask_set(tmp_path, size=(6, 4)):
    imgs, masks = tmp_path / "images", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    Image.new("RGB", size).save(imgs / "a.jpg")
    Image.new("RGB", size).save(imgs / "b.png")
    labels = np.zeros(size[::-1], np.uint8)
    labels[0, :] = 2
    labels[1, 1] = 255
    Image.fromarray(labels, "L").save(masks / "a.png")
    pal = Image.fromarray(labels, "P")
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [255, 255, 255] * 253)   # index 2 drawn green
    pal.save(masks / "b.png")
    return imgs, masks, labels


def test_masks_pairs_and_palette_indices(tmp_path):
    imgs, masks, labels = _mask_set(tmp_path)
    ms = read_masks(imgs, masks)
    assert [(i.name, m.name) for i, m in ms.pairs] == [("a.jpg", "a.png"), ("b.png", "b.png")]
    assert ms.ignore == 255
    for _, m in ms.pairs:
        assert np.array_equal(read_mask(m), labels), "a P mask gives class indices, not colours"


def test_masks_errors_name_the_file(tmp_path):
    imgs, masks, _ = _mask_set(tmp_path)
    Image.new("L", (5, 4)).save(masks / "a.png")
    with pytest.raises(DatasetError) as err:
        read_masks(imgs, masks)
    assert str(err.value) == f"{masks / 'a.png'}: mask is 5x4 but its image a.jpg is 6x4"
    Image.new("RGB", (6, 4)).save(masks / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png: mode RGB; a class-index mask is one channel"):
        read_masks(imgs, masks)
    (masks / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"a\.jpg: no mask .*a\.png"):
        read_masks(imgs, masks)
    Image.new("L", (6, 4)).save(masks / "a.png")
    Image.new("L", (6, 4)).save(masks / "zz.png")
    with pytest.raises(DatasetError, match=r"zz\.png: no image with the stem 'zz'"):
        read_masks(imgs, masks)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_tensors_by_position(tmp_path):
    x0, x1 = np.zeros((3, 4), np.float32), np.ones((3, 2, 2), np.uint8)
    y0 = np.arange(6, dtype=np.float32).reshape(3, 2)
    ts = read_tensors(_npz(tmp_path / "t.npz", x1=x1, x0=x0, y0=y0, labels=np.array([1, 0, 1])))
    assert ts.n == 3 and [a.shape for a in ts.inputs] == [(3, 4), (3, 2, 2)]
    assert np.array_equal(ts.outputs[0], y0) and ts.labels.dtype == np.int64
    one = read_tensors(_npz(tmp_path / "o.npz", x=x0, labels=np.array([0, 1, 2])))
    assert len(one.inputs) == 1 and one.outputs == []


def test_tensors_by_name_keep_the_file_order_for_the_matcher(tmp_path):
    """Inputs named after the model's inputs are read as they are; which feeds which input is the
    board's matcher's decision once the model is known (device/contract/feeds.py)."""
    feats, sensor = np.zeros((3, 5), np.float32), np.ones((3, 2), np.float32)
    ts = read_tensors(_npz(tmp_path / "n.npz", features=feats, sensor=sensor, y0=np.zeros((3, 4), np.float32)))
    assert ts.input_names == ["features", "sensor"] and [a.shape for a in ts.inputs] == [(3, 5), (3, 2)]
    pos = read_tensors(_npz(tmp_path / "p.npz", x1=sensor, x0=feats, labels=np.array([0, 1, 0])))
    assert pos.input_names == ["x0", "x1"] and pos.inputs[0].shape == (3, 5)


@pytest.mark.parametrize("arrays, says", [
    ({"x0": np.zeros((2, 1)), "y": np.zeros(2)}, "'y' is ambiguous"),
    ({"x0": np.zeros((2, 1)), "out": np.zeros(2)}, "arrays x0 are positional and out are names"),
    ({"x0": np.zeros((2, 1)), "x2": np.zeros((2, 1)), "labels": np.zeros(2, int)}, "arrays x0, x2: number them"),
    ({"x0": np.zeros((2, 1)), "y0": np.zeros((3, 1))}, "array y0 has shape (3, 1)"),
    ({"x0": np.zeros((2, 1)), "labels": np.zeros(2)}, "labels must be integers shaped (2,)"),
    ({"x0": np.zeros((2, 1))}, "nothing to score against"),
    ({"labels": np.zeros(2, int)}, "no inputs"),
    ({"x_test": np.zeros((2, 1)), "y_test": np.zeros(2, int)}, "classification set"),
])
def test_tensors_bad_arrays(tmp_path, arrays, says):
    path = _npz(tmp_path / "t.npz", **arrays)
    with pytest.raises(DatasetError) as err:
        read_tensors(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and says in msg


def test_registry_picks_the_reader_by_prefix(tmp_path):
    imgs, masks, _ = _mask_set(tmp_path)
    (tmp_path / "c.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
                                                 "categories": [{"id": 1, "name": "x"}]}))
    ds = open_eval(f"coco:{tmp_path / 'c.json'}:{imgs}")
    assert isinstance(ds, DetectionSet) and ds.images[0].width == 6 and ds.spec.startswith("coco:")
    (tmp_path / "labels").mkdir()
    assert isinstance(open_eval(f"yolo:{tmp_path}"), DetectionSet)
    assert isinstance(open_eval(f"masks:{imgs}:{masks}"), MaskSet)
    path = _npz(tmp_path / "t.npz", x=np.zeros((2, 1)), labels=np.array([0, 1]))
    assert isinstance(open_eval(f"npz:{path}"), TensorSet)


@pytest.mark.parametrize("spec, says", [
    ("voc:/x", "unknown evaluation set; use coco:JSON[:IMAGES], yolo:PATH[:SPLIT], masks:IMAGES:MASKS, npz:PATH"),
    ("/some/folder", "unknown evaluation set"),
    ("masks:only_images", "expected masks:IMAGES:MASKS"),
    ("coco:", "expected coco:JSON[:IMAGES]"),
    ("npz:a:b", "expected npz:PATH"),
])
def test_registry_bad_specs(spec, says):
    with pytest.raises(DatasetError) as err:
        open_eval(spec)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"EVAL={spec}: {says}")


def test_a_file_that_is_not_an_npz_archive_says_so(tmp_path):
    """NumPy reads anything that is not a zip or .npy as a pickle, and refuses that: the user is told
    what the file is not, instead of "Cannot load file containing pickled data"."""
    path = tmp_path / "set.npz"
    path.write_text("x0,y0\n1,2\n")                      # a CSV renamed, say
    with pytest.raises(DatasetError) as err:
        read_tensors(path)
    assert str(err.value) == f"npz eval set: {path} is not an .npz archive (numpy.savez / savez_compressed write one)"
