"""`python -m host score`: the board's infer JSON scored with pycocotools against a COCO file,
end to end on a real detector with known outputs (tests/device/task_models.py)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.device.conftest import REPO, agent_env, run_agent


@pytest.fixture(scope="module")
def yolo():
    from tests.cached_models import task_models
    return task_models()["yolo"]


def _set(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((96, 128, 3), dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    # the model's boxes on a 128x96 image (stretch): class 0 at (30, 22.5, 50, 37.5), class 1 at
    # (32, 22.5, 52, 37.5), class 2 at (92, 66, 108, 84); the truth has 0 and 1 there, 2 elsewhere
    anns = [(1, [30, 22.5, 20, 15]), (2, [32, 22.5, 20, 15]), (3, [0, 0, 10, 10])]
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": 128, "height": 96}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}],
            "annotations": [{"id": i, "image_id": 7, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                            for i, (c, b) in enumerate(anns)]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    return f"coco:{tmp_path / 'instances.json'}:{tmp_path / 'images'}"


def _host(*args):
    return subprocess.run([sys.executable, "-m", "host", *map(str, args)], capture_output=True, text=True,
                          env=agent_env(), cwd=REPO, timeout=300)


def test_board_detections_scored_with_pycocotools_and_compared(yolo, tmp_path):
    spec = _set(tmp_path)
    for name in ("board", "host"):
        run = run_agent("infer", yolo, tmp_path / "images", "--labels", tmp_path / "labels.txt",
                        "--json", tmp_path / f"{name}.json")
        assert run.code == 0, run.stderr
    proc = _host("score", spec, tmp_path / "board.json", tmp_path / "host.json", "--json", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "s.json").read_text())
    board = scores["results"][str(tmp_path / "board.json")]
    # cat and dog found exactly (AP 1), bird's one box is elsewhere (AP 0): the mean is 2/3
    assert board["per_category"] == pytest.approx({"cat": 1.0, "dog": 1.0, "bird": 0.0})
    assert board["map"] == pytest.approx(2 / 3) and board["map50"] == pytest.approx(2 / 3)
    assert scores["agreement"]["matched"] == 1.0 and scores["agreement"]["mean_iou"] == pytest.approx(1.0)
    assert "board vs host" in proc.stdout


def test_a_result_missing_an_image_of_the_set_is_one_line_exit_2(yolo, tmp_path):
    spec = _set(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "other.png")
    run = run_agent("infer", yolo, tmp_path / "other.png", "--json", tmp_path / "r.json")
    assert run.code == 0
    proc = _host("score", spec, tmp_path / "r.json")
    assert proc.returncode == 2 and "no prediction for a.png of the evaluation set" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
