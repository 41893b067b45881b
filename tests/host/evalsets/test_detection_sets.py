"""COCO JSON and YOLO folders read into one COCO-style set, and one-line errors naming file and entry."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from PIL import Image

from host.data.builtin import DatasetError
from host.evalsets.coco import read_coco
from host.evalsets.yolo import read_yolo


def _png(path, w, h, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h)).save(path)
    return path


def _coco_set(tmp_path, **changes):
    """Two images, categories out of id order, Label Studio style ids from 0 and folder-prefixed names."""
    images = tmp_path / "images"
    _png(images / "a.png", 100, 50)
    _png(images / "b.jpg", 64, 48)
    data = {
        "images": [{"id": 0, "file_name": "images/a.png", "width": 100, "height": 50},
                   {"id": 1, "file_name": "b.jpg"}],                       # size from the header
        "annotations": [{"id": 0, "image_id": 0, "category_id": 5, "bbox": [10, 5, 20, 10], "iscrowd": 0},
                        {"id": 11, "image_id": 0, "category_id": 0, "bbox": [0, 0, 4, 4], "area": 12.5},
                        {"id": 12, "image_id": 1, "category_id": 5, "bbox": [1, 2, 3, 4]}],
        "categories": [{"id": 5, "name": "dog"}, {"id": 0, "name": "cat"}],
    }
    for key, value in changes.items():
        section, index, field = key.split("__")
        if value is None:
            del data[section][int(index)][field]
        else:
            data[section][int(index)][field] = value
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_coco_reads_and_normalises(tmp_path):
    path, images = _coco_set(tmp_path)
    ds = read_coco(path, images)
    assert ds.category_names == ["cat", "dog"] and ds.category_ids == [0, 5]
    assert [(e.image_id, e.path.name, e.width, e.height) for e in ds.images] == [(0, "a.png", 100, 50),
                                                                                 (1, "b.jpg", 64, 48)]
    anns = ds.coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3], "ids renumbered from 1: COCOeval reads id 0 as unmatched"
    assert [a["source_id"] for a in anns] == [0, 11, 12]
    assert anns[0]["area"] == 200 and anns[1]["area"] == 12.5     # w*h when missing, kept when given
    assert not ds.has_keypoints and ds.summary()["annotations"] == 3


def test_coco_dict_is_accepted_by_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    ds = read_coco(*_coco_set(tmp_path))
    coco = COCO()
    coco.dataset = ds.coco
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    assert sorted(coco.getCatIds()) == [0, 5] and len(coco.getAnnIds(imgIds=[0])) == 2


def test_coco_images_default_to_the_json_folder(tmp_path):
    path, _ = _coco_set(tmp_path)
    (tmp_path / "images" / "a.png").rename(tmp_path / "a.png")
    (tmp_path / "images" / "b.jpg").rename(tmp_path / "b.jpg")
    assert len(read_coco(path).images) == 2


def test_coco_keypoints(tmp_path):
    path, images = _coco_set(tmp_path)
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"] = ["nose", "tail"]
    data["annotations"][0]["keypoints"] = [12, 7, 2, 0, 0, 0]
    path.write_text(json.dumps(data))
    ds = read_coco(path, images)
    assert ds.has_keypoints and ds.keypoint_names == ["nose", "tail"]
    assert ds.coco["annotations"][0]["num_keypoints"] == 1       # counted from visibility when missing


@pytest.mark.parametrize("change, entry, says", [
    ({"annotations__1__bbox": None}, "annotation 1 (id 11)", "bbox must be 4 numbers"),
    ({"annotations__2__bbox": [1, 2, 3]}, "annotation 2 (id 12)", "bbox must be 4 numbers"),
    ({"annotations__2__bbox": [1, 2, "3", 4]}, "annotation 2 (id 12)", "bbox"),
    ({"annotations__2__bbox": [1, 2, -3, 4]}, "annotation 2 (id 12)", ">= 0"),
    ({"annotations__1__image_id": 9}, "annotation 1 (id 11)", "image_id 9"),
    ({"annotations__1__category_id": 3}, "annotation 1 (id 11)", "category_id 3"),
    ({"annotations__0__iscrowd": 2}, "annotation 0 (id 0)", "iscrowd"),
    ({"images__1__file_name": "missing.jpg"}, "image 1 (id 1)", "not found"),
    ({"images__0__width": 0}, "image 0 (id 0)", "positive"),
    ({"categories__1__id": 5}, "category 1 (id 5)", "twice"),
])
def test_coco_bad_entries_name_file_and_entry(tmp_path, change, entry, says):
    path, images = _coco_set(tmp_path, **change)
    with pytest.raises(DatasetError) as err:
        read_coco(path, images)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and f": {entry}:" in msg and says in msg


def test_coco_bad_keypoints_and_json(tmp_path):
    path, images = _coco_set(tmp_path)
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"] = ["nose", "tail"]
    data["annotations"][2]["keypoints"] = [1, 2, 2]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"instances\.json: annotation 2 \(id 12\): keypoints must be 6"):
        read_coco(path, images)
    path.write_text('{"images": [], "annotations": [,]}')
    with pytest.raises(DatasetError, match=r"instances\.json: not valid JSON \(line 1 column"):
        read_coco(path, images)
    path.write_text('{"images": [], "annotations": []}')
    with pytest.raises(DatasetError, match=r"instances\.json: needs a list 'categories'"):
        read_coco(path, images)
    with pytest.raises(DatasetError, match="nope.json: COCO annotation file not found"):
        read_coco(tmp_path / "nope.json", images)


def _yolo_set(root, labels, names_yaml="names: [cat, dog, bird]\n"):
    _png(root / "images" / "a.png", 100, 50)
    _png(root / "images" / "b.jpg", 64, 64)
    (root / "labels").mkdir(parents=True)
    for stem, text in labels.items():
        (root / "labels" / f"{stem}.txt").write_text(text)
    if names_yaml is not None:
        (root / "data.yaml").write_text(names_yaml)
    return root


def test_yolo_converts_to_pixel_boxes(tmp_path):
    root = _yolo_set(tmp_path / "set", {"a": "2 0.5 0.5 0.2 0.4\n\n0 0.25 0.5 0.5 1.0\n"})
    ds = read_yolo(root)
    assert ds.category_names == ["cat", "dog", "bird"] and ds.category_ids == [0, 1, 2]
    assert [(e.image_id, e.path.name, e.width, e.height) for e in ds.images] == [(1, "a.png", 100, 50),
                                                                                 (2, "b.jpg", 64, 64)]
    anns = ds.coco["annotations"]
    # centre (50, 25), size 20x20 -> top-left (40, 15); centre (25, 25), size 50x50 -> (0, 0)
    assert [(a["image_id"], a["category_id"]) for a in anns] == [(1, 2), (1, 0)]
    assert anns[0]["bbox"] == pytest.approx([40, 15, 20, 20]) and anns[0]["area"] == pytest.approx(400)
    assert anns[1]["bbox"] == pytest.approx([0, 0, 50, 50])
    assert [a["id"] for a in anns] == [1, 2]      # b.jpg has no label file: a background image


def test_yolo_label_files_without_an_image_are_named_in_one_warning(tmp_path, capsys):
    """Their boxes are left out (as Ultralytics does), but not silently: a typo'd or unsupported image
    would otherwise lower recall with no word said. labelImg's labels/classes.txt is not a label file."""
    labels = {"a": "0 0.5 0.5 0.2 0.4\n", "gone": "1 0.5 0.5 0.1 0.1\n", "b2": "2 0.5 0.5 0.1 0.1\n",
              "classes": "cat\ndog\nbird\n"}
    ds = read_yolo(_yolo_set(tmp_path / "set", labels))
    assert [a["image_id"] for a in ds.coco["annotations"]] == [1]
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("warning:") and "2 label file(s) without an image left out (b2.txt, gone.txt;" in line
    read_yolo(_yolo_set(tmp_path / "clean", {"a": "0 0.5 0.5 0.2 0.4\n", "classes": "cat\n"}))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("names_file, text, expected", [
    ("data.yaml", "nc: 2\nnames: {0: person, 1: car}\n", ["person", "car"]),
    ("classes.txt", "person\ncar\n\n", ["person", "car"]),
    ("../data.yaml", "names: [x, y]\n", ["x", "y"]),           # Roboflow: data.yaml next to valid/
])
def test_yolo_names_sources(tmp_path, names_file, text, expected):
    root = _yolo_set(tmp_path / "valid", {"a": "1 0.5 0.5 0.1 0.1\n"}, names_yaml=None)
    (root / names_file).write_text(text)
    assert read_yolo(root).category_names == expected


def test_yolo_without_names_and_with_split(tmp_path):
    root = _yolo_set(tmp_path / "set", {"a": "3 0.5 0.5 0.1 0.1\n"}, names_yaml=None)
    assert read_yolo(root).category_names == ["0", "1", "2", "3"]
    split = tmp_path / "u"
    _png(split / "images" / "val" / "c.png", 10, 10)
    (split / "labels" / "val").mkdir(parents=True)
    (split / "labels" / "val" / "c.txt").write_text("0 0.5 0.5 1 1\n")
    ds = read_yolo(split, "val")
    assert ds.coco["annotations"][0]["bbox"] == pytest.approx([0, 0, 10, 10])


@pytest.mark.parametrize("text, line, says", [
    ("0 0.5 0.5 0.2 0.4\n1 0.5 0.5 0.2\n", 2, "expected 5 fields (class cx cy w h), got 4"),
    ("0 0.5 0.5 0.2 0.4 0.1 0.1\n", 1, "expected 5 fields"),          # a polygon line
    ("3 0.5 0.5 0.2 0.4\n", 1, "class 3 is out of range (3 classes in"),
    ("-1 0.5 0.5 0.2 0.4\n", 1, "class -1 is out of range"),
    ("cat 0.5 0.5 0.2 0.4\n", 1, "integer class"),
    ("0 50 25 20 20\n", 1, "normalised to 0..1"),
])
def test_yolo_bad_lines_name_file_and_line(tmp_path, text, line, says):
    root = _yolo_set(tmp_path / "set", {"a": text})
    with pytest.raises(DatasetError) as err:
        read_yolo(root)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{root / 'labels' / 'a.txt'}: line {line}: ") and says in msg


def test_yolo_bad_layout(tmp_path):
    with pytest.raises(DatasetError, match="image folder not found"):
        read_yolo(tmp_path)
    root = _yolo_set(tmp_path / "set", {}, names_yaml="names: 3\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: needs names"):
        read_yolo(root)
    (root / "data.yaml").write_text("nc: 4\nnames: [a, b]\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: nc is 4 but names has 2"):
        read_yolo(root)
