"""Every task end to end on small real models whose outputs are known (tests/device/task_models.py):
recognition, decoding, NMS, boxes/masks/points put back on the original image (stretch and
letterbox), the infer JSON, --draw and --mask_out, and the one-line refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from device.contract.inputs import Preprocess, geometry_for
from device.errors import EXIT_USAGE
from device.tasks import base, detect, registry
from tests.device import task_models as tm


@pytest.fixture(scope="module")
def tmodels():
    from tests.cached_models import task_models
    return task_models()


def _image(path, w, h, left=(255, 0, 0), right=(0, 0, 255)):
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2:] = right
    Image.fromarray(arr).save(path)
    return str(path)


# ---------------------------------------------------------------- pure decoding

def test_nms_keeps_the_best_box_per_class_and_never_across_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    cls = np.array([0, 0, 1, 0])
    # box 1 overlaps box 0 with IoU 90/110 = 0.818 in the same class: gone; box 2 is another class
    assert detect.nms(boxes, scores, cls, 0.45).tolist() == [0, 2, 3]
    assert detect.nms(boxes, scores, cls, 0.85).tolist() == [0, 1, 2, 3]     # 0.818 <= 0.85: kept
    assert detect.nms(boxes[:0], scores[:0], cls[:0], 0.45).tolist() == []


def _greedy_nms_box_by_box(boxes, scores, cls, iou, max_keep):
    """Greedy NMS as it is written in textbooks: the best box left is kept, every box of its class
    overlapping it by more than iou is dropped, repeat."""
    left = sorted(range(len(boxes)), key=lambda i: -scores[i])     # sorted() is stable, as argsort's
    keep = []
    while left and len(keep) < max_keep:
        best = left.pop(0)
        keep.append(best)
        left = [j for j in left if cls[j] != cls[best]
                or detect.iou_matrix(boxes[best:best + 1], boxes[j:j + 1])[0, 0] <= iou]
    return keep


@pytest.mark.parametrize("n,max_keep", [(1, 300), (63, 300), (64, 300), (65, 300), (400, 300), (1500, 300),
                                        (400, 7)])
def test_nms_in_chunks_keeps_what_box_by_box_greedy_nms_keeps(n, max_keep):
    """Crowds of overlapping boxes in three classes, ties in the scores, chains (a suppresses b,
    b would have suppressed c) across and inside chunks, and the max_keep cut."""
    rng = np.random.default_rng(n)
    centres = rng.uniform(0, 400, (max(1, n // 4), 2))[rng.integers(0, max(1, n // 4), n)]
    centres += rng.normal(0, 6, (n, 2))
    half = rng.uniform(5, 20, (n, 2))
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    scores = np.round(rng.uniform(0.25, 1.0, n), 2)                 # rounded: many ties
    cls = rng.integers(0, 3, n)
    want = _greedy_nms_box_by_box(boxes, scores, cls, 0.45, max_keep)
    got = detect.nms(boxes, scores, cls, 0.45, max_keep).tolist()
    assert got == want and len(want) >= min(max_keep, n, 2)


def test_iou_matrix_by_hand():
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=np.float64)
    assert np.allclose(detect.iou_matrix(a, b), [[50 / 150, 0.0, 1.0]])


def test_letterbox_geometry_is_ultralytics_and_inverts():
    pre = Preprocess(64, 64, 3, 1.0, 0.0, "manifest", resize="letterbox")
    g = geometry_for(128, 96, pre)          # r = 0.5 -> 64 x 48, 8 rows of grey above and below
    assert (g.sx, g.sy, g.pad_x, g.pad_y, g.box) == (0.5, 0.5, 0, 8, (0, 8, 64, 48))
    x, y = g.to_source(np.array([0.0, 64.0]), np.array([8.0, 56.0]))
    assert x.tolist() == [0.0, 128.0] and y.tolist() == [0.0, 96.0]


def test_label_files_with_or_without_the_leading_placeholder():
    assert base.label_for(0, ["person", "bicycle"]) == "person"
    assert base.label_for(0, ["???", "person", "bicycle"]) == "person"
    assert base.label_for(7, ["person"]) == "7"
    assert base.label_count(["???", "a", "b"]) == 2


def test_yolo_objectness_is_told_by_the_label_count():
    assert detect.has_objectness(85, None) and not detect.has_objectness(84, None)
    assert detect.has_objectness(8, ["a", "b", "c"]) and not detect.has_objectness(7, ["a", "b", "c"])


# ---------------------------------------------------------------- recognition

@pytest.mark.parametrize("name, task", [("yolo", "detect"), ("ssd", "detect"), ("segment", "segment"),
                                        ("movenet", "keypoints"), ("multipose", "keypoints"), ("raw", "raw")])
def test_each_model_is_recognised_from_its_outputs(tmodels, name, task):
    from device.runtimes import registry as runtimes
    from device.serving.predictor import Predictor
    assert Predictor(tmodels[name], runtimes.resolve()).task.name == task


def test_an_unrecognised_layout_is_raw_with_one_note(tmodels):
    from device.runtimes import registry as runtimes
    from device.serving.predictor import Predictor
    p = Predictor(tmodels["raw"], runtimes.resolve())
    assert p.notes == ["output layout (Identity [1, 2, 3]) is not one any task recognises: task raw"]


# ---------------------------------------------------------------- infer, end to end

def test_yolo_detections_on_the_original_image_stretch(agent, tmodels, tmp_path):
    img = _image(tmp_path / "a.png", 128, 96)
    run = agent("infer", tmodels["yolo"], img, "--json", "-")
    assert run.code == 0, run.stderr
    res = run.doc["results"][0]
    assert res["task"] == "detect"
    dets = res["predictions"][0]["detections"]
    assert [(d["class_id"], d["score"]) for d in dets] == [(0, 0.9), (1, 0.7), (2, 0.6)]
    sx, sy = 128 / 64, 96 / 64          # stretch: model pixels times the size ratio
    (cx, cy, w, h), _, _ = tm.YOLO_ROWS[0]
    want = [(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy]
    assert dets[0]["box"] == pytest.approx(want, abs=0.01)
    assert res["predictions"][0]["postprocess_us"] > 0 and res["predictions"][0]["latency_us"] > 0


def test_yolo_letterbox_undone_labels_and_threshold(agent, tmodels, tmp_path):
    img = _image(tmp_path / "a.png", 128, 96)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"input": {"pixel_scale": 1 / 255, "pixel_offset": 0.0, "height": 64,
                                              "width": 64, "channels": 3, "resize": "letterbox"}}))
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    run = agent("infer", tmodels["yolo"], img, "--manifest", manifest, "--labels", labels,
                "--threshold", "0.65", "--json", "-")
    assert run.code == 0, run.stderr
    dets = run.doc["results"][0]["predictions"][0]["detections"]
    assert [d["label"] for d in dets] == ["cat", "dog"]          # 0.6 is under 0.65 now
    # letterbox: r = 0.5, 8 grey rows on top; (15, 15, 25, 25) in the model -> (30, 14, 50, 34)
    assert dets[0]["box"] == pytest.approx([30.0, 14.0, 50.0, 34.0], abs=0.01)


def test_a_label_file_of_the_wrong_length_is_one_warning(agent, tmodels, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")    # 2 would be a YOLOv5 head: objectness + 2 classes
    run = agent("infer", tmodels["yolo"], _image(tmp_path / "a.png", 64, 64), "--labels", labels, "--json", "-")
    assert run.code == 0
    assert "labels: 5 labels but the model has 3 classes" in run.doc["warnings"]


def test_a_label_file_one_short_of_a_yolo_head_says_how_the_head_is_read(agent, tmodels, tmp_path):
    """(1, 7, N) with 2 labels is a YOLOv5 head (objectness + 2 classes) or a YOLOv8 head whose
    label file lost a line: it is read the first way, and one line says so with both counts."""
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    run = agent("infer", tmodels["yolo"], _image(tmp_path / "a.png", 64, 64), "--labels", labels, "--json", "-")
    assert run.code == 0
    assert [w for w in run.doc["warnings"] if w.startswith("labels:")] == [
        "labels: 2 labels for 3 class score rows: read as YOLOv5 (objectness + 2 classes); a YOLOv8 or later "
        "head of 3 classes needs 3 labels"]


def test_no_detections_is_an_empty_list_and_exit_0(agent, tmodels, tmp_path):
    run = agent("infer", tmodels["yolo"], _image(tmp_path / "a.png", 64, 64), "--threshold", "0.99", "--json", "-")
    assert run.code == 0 and run.doc["results"][0]["predictions"][0]["detections"] == []


def test_postprocess_outputs_boxes_classes_scores_count(agent, tmodels, tmp_path):
    img = _image(tmp_path / "a.png", 200, 100)
    run = agent("infer", tmodels["ssd"], img, "--json", "-")
    assert run.code == 0, run.stderr
    dets = run.doc["results"][0]["predictions"][0]["detections"]
    assert [(d["class_id"], d["score"]) for d in dets] == [(0, 0.95), (17, 0.6), (2, 0.3)]
    ymin, xmin, ymax, xmax = tm.SSD_BOXES[0]
    assert dets[0]["box"] == pytest.approx([xmin * 200, ymin * 100, xmax * 200, ymax * 100], abs=0.01)


def test_forcing_a_task_the_outputs_do_not_fit_is_exit_2(agent, tmodels, tmp_path):
    run = agent("infer", tmodels["yolo"], _image(tmp_path / "a.png", 64, 64), "--task", "segment", "--json", "-")
    assert run.code == EXIT_USAGE
    assert "--task segment: this model's outputs (Identity [1, 7, 1200]) are not a segment layout" in run.stderr
    assert "Traceback" not in run.stderr


def test_segmentation_class_map_shares_mask_and_drawing(agent, tmodels, tmp_path):
    img = _image(tmp_path / "a.png", 96, 64)      # left half red, right half blue: classes 0 and 2
    mask, drawn = tmp_path / "mask.png", tmp_path / "drawn.jpg"
    run = agent("infer", tmodels["segment"], img, "--mask-out", mask, "--draw", drawn, "--json", "-")
    assert run.code == 0, run.stderr
    seg = run.doc["results"][0]["predictions"][0]["segmentation"]
    assert seg == {"classes": {"0": 0.5, "2": 0.5}, "size": [96, 64]}
    got = np.asarray(Image.open(mask))
    assert got.shape == (64, 96) and (got[:, :48] == 0).all() and (got[:, 48:] == 2).all()
    with Image.open(drawn) as d:
        assert d.size == (96, 64) and d.format == "JPEG"


def test_mask_out_on_a_detector_is_refused(agent, tmodels, tmp_path):
    run = agent("infer", tmodels["yolo"], _image(tmp_path / "a.png", 64, 64), "--mask_out", tmp_path / "m.png")
    assert run.code == EXIT_USAGE and "--mask_out is for segmentation; this model's task is detect" in run.stderr
    assert not (tmp_path / "m.png").exists()


def test_single_pose_points_in_image_pixels(agent, tmodels, tmp_path):
    run = agent("infer", tmodels["movenet"], _image(tmp_path / "a.png", 128, 64), "--json", "-")
    assert run.code == 0, run.stderr
    kps = run.doc["results"][0]["predictions"][0]["keypoints"]
    assert [k["name"] for k in kps][:3] == ["nose", "left_eye", "right_eye"] and len(kps) == 17
    y, x, s = tm.MOVENET[0, 0, 16]
    assert (kps[16]["x"], kps[16]["y"]) == pytest.approx((x * 128, y * 64), abs=0.01)
    assert kps[16]["score"] == pytest.approx(s, abs=1e-5)


def test_multi_pose_drops_people_under_the_threshold_best_first(agent, tmodels, tmp_path):
    run = agent("infer", tmodels["multipose"], _image(tmp_path / "a.png", 64, 64), "--draw", tmp_path / "p.jpg",
                "--json", "-")
    assert run.code == 0, run.stderr
    poses = run.doc["results"][0]["predictions"][0]["poses"]
    assert [p["score"] for p in poses] == pytest.approx([0.8, 0.5])
    assert poses[0]["box"] == pytest.approx([0.2 * 64, 0.1 * 64, 0.7 * 64, 0.6 * 64], abs=0.01)
    assert (tmp_path / "p.jpg").stat().st_size > 0


def test_raw_outputs_are_listed_and_non_image_inputs_take_npy(agent, tmodels, tmp_path):
    x = np.arange(16, dtype=np.float32).reshape(1, 16)
    np.save(tmp_path / "x.npy", x)
    run = agent("infer", tmodels["raw"], tmp_path / "x.npy", "--json", "-")
    assert run.code == 0, run.stderr
    out = run.doc["results"][0]["predictions"][0]["outputs"][0]
    assert out["shape"] == [2, 3] and out["values"] == (x[0, :6] * 2).tolist() and out["argmax"] == 5
    run = agent("infer", tmodels["raw"], _image(tmp_path / "a.png", 8, 8), "--json", "-")
    assert run.code == 1 and "is not an image; give it a .npy tensor" in run.stderr


def test_shared_ssd_detector_runs_with_either_label_file(agent, tmp_path):
    import os
    from tests.device.conftest import SHARED_MODELS
    model = os.path.join(SHARED_MODELS, "ssd_mobilenet_v1_coco_quant.tflite")
    if not os.path.isfile(model):
        pytest.skip("../shared/models is not here (a user's clone): the third-party detector is CI's")
    labels = open(os.path.join(SHARED_MODELS, "ssd_mobilenet_v1_coco_labels.txt")).read().splitlines()
    plain, offset = tmp_path / "plain.txt", tmp_path / "offset.txt"
    plain.write_text("\n".join(labels) + "\n")
    offset.write_text("???\n" + "\n".join(labels) + "\n")
    img = _image(tmp_path / "a.jpg", 320, 240, left=(120, 90, 60), right=(30, 160, 200))
    runs = [agent("infer", model, img, "--labels", lf, "--threshold", "0.0", "--json", "-") for lf in (plain, offset)]
    assert all(r.code == 0 for r in runs), runs[0].stderr
    a, b = (r.doc["results"][0]["predictions"][0]["detections"] for r in runs)
    assert a == b and len(a) == 10 and runs[0].doc["results"][0]["task"] == "detect"
    for d in a:
        assert 0 <= d["box"][0] <= d["box"][2] <= 320 and 0 <= d["box"][1] <= d["box"][3] <= 240
        assert d["label"] == labels[d["class_id"]]
    assert [w for r in runs for w in r.doc["warnings"] if "labels" in w] == []
    # its shapes do not say how many classes it has; its post-processing op's options do (90)
    for n in (5, 93):
        wrong = tmp_path / f"{n}.txt"
        wrong.write_text("\n".join((labels * 2)[:n]) + "\n")
        run = agent("infer", model, img, "--labels", wrong, "--json", "-")
        assert run.code == 0 and f"labels: {n} labels but the model has 90 classes" in run.doc["warnings"]


def test_raw_eval_from_an_npz_errors_cosine_and_accuracy(agent, tmodels, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 16)).astype(np.float32)
    want = (x[:, :6] * 2).reshape(8, 2, 3)
    y0 = want.copy()
    y0[3, 1, 2] += 0.25                                  # one value off by 0.25: the largest error
    labels = np.argmax(want.reshape(8, 6), axis=1)
    labels[0] = (labels[0] + 1) % 6                      # one label wrong: top-1 7/8
    np.savez(tmp_path / "set.npz", x=x, y0=y0, labels=labels)
    run = agent("eval", tmodels["raw"], tmp_path / "set.npz", "--json", "-")
    assert run.code == 0, run.stderr
    res = run.doc["results"][0]
    assert res["task"] == "raw" and res["accuracy"]["top1"] == 0.875 and res["accuracy"]["count"] == 8
    (out,) = res["tensors"]["outputs"]
    assert out["max_abs_error"] == pytest.approx(0.25, abs=1e-5) and 0.99 < out["mean_cosine"] < 1.0
    np.savez(tmp_path / "bad.npz", x0=x, x1=x, labels=labels)
    run = agent("eval", tmodels["raw"], tmp_path / "bad.npz", "--json", "-")
    assert run.code == 2 and "2 input arrays for a model with 1 inputs" in run.stderr   # bad input: usage


def test_a_multi_input_model_is_evaluated_from_arrays_by_position(agent, models, tmp_path):
    """Inputs by the interpreter's order (the converter put `b` before `a`); expected outputs from an
    independent run of the same model through TensorFlow Lite's own Interpreter."""
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=models["two_inputs"])
    interp.allocate_tensors()
    ins, out = interp.get_input_details(), interp.get_output_details()[0]
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=(6, *d["shape"][1:])).astype(np.float32) for d in ins]
    y0 = []
    for i in range(6):
        for d, x in zip(ins, xs):
            interp.set_tensor(d["index"], x[i:i + 1])
        interp.invoke()
        y0.append(interp.get_tensor(out["index"])[0])
    np.savez(tmp_path / "set.npz", x0=xs[0], x1=xs[1], y0=np.array(y0))
    run = agent("eval", models["two_inputs"], tmp_path / "set.npz", "--json", "-")
    assert run.code == 0, run.stderr
    (o,) = run.doc["results"][0]["tensors"]["outputs"]
    assert o["max_abs_error"] <= 1e-5 and o["mean_cosine"] == pytest.approx(1.0, abs=1e-6)
    np.savez(tmp_path / "swapped.npz", x0=xs[1], x1=xs[0], y0=np.array(y0))
    run = agent("eval", models["two_inputs"], tmp_path / "swapped.npz", "--json", "-")
    assert run.code == 1 and "does not match model input" in run.stderr


def test_a_class_map_crosses_as_runs_and_comes_back_equal():
    from device.tasks.segment import decode_runs, encode_runs
    rng = np.random.default_rng(3)
    cmap = np.repeat(rng.integers(0, 5, (12, 7)), 3, axis=1).astype(np.uint8)      # runs of 3 and longer
    runs = encode_runs(cmap)
    assert runs["size"] == [21, 12] and sum(runs["counts"]) == cmap.size and len(runs["values"]) < cmap.size
    assert np.array_equal(decode_runs(runs), cmap)
    assert decode_runs(encode_runs(np.zeros((0, 0), np.uint8))).shape == (0, 0)
    with pytest.raises(ValueError, match="do not cover 21x12"):
        decode_runs(dict(runs, counts=runs["counts"][:-1] + [runs["counts"][-1] + 1]))


@pytest.mark.parametrize("objectness,kept", [(False, 2), (True, 1)])
def test_nms_iou_defaults_to_the_family_own(objectness, kept):
    """Two boxes of one class overlapping at IoU 0.67: YOLOv8 and later (Ultralytics' predict and
    val, NMS IoU 0.7) keep both, YOLOv5's detect.py (0.45) keeps one; --iou overrides either."""
    boxes = [(50, 50, 40, 40), (58, 50, 40, 40)]          # cx, cy, w, h: IoU 32*40 / (2*1600 - 1280) = 0.667
    rows = []
    for (cx, cy, w, h), score in zip(boxes, (0.9, 0.8)):
        rows.append([cx, cy, w, h] + ([1.0] if objectness else []) + [score, 0.0])
    rows += [[0.0] * len(rows[0])] * 8                     # empty anchors
    head = np.array(rows, dtype=np.float32).T             # (attrs, N), as YOLOv8 exports
    layout = detect.yolo_layout([{"shape": [1, *head.shape]}])
    labels = ["a", "b"]
    assert len(detect.decode_yolo(head, layout, base.Context(labels=labels, input_hw=(100, 100)))[0]) == kept
    forced = base.Context(labels=labels, input_hw=(100, 100), iou=0.5)
    assert len(detect.decode_yolo(head, layout, forced)[0]) == 1
