"""`serve` for a detector: /infer answers the same JSON as `infer` (boxes on the sent image), and
/infer?draw=1 returns the image with the boxes drawn, as JPEG."""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.device.serving.test_serve import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def detector():
    from tests.cached_models import task_models
    s = Server(task_models()["yolo"])
    yield s
    s.stop()


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((96, 128, 3), 90, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _post(server, path: str, body: bytes):
    req = urllib.request.Request(server.url(path), data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read()


def test_infer_returns_detections_on_the_sent_image(detector, agent, tmp_path):
    status, ctype, body = _post(detector, "/infer", _photo())
    assert status == 200 and ctype == "application/json"
    got = json.loads(body)
    (tmp_path / "a.png").write_bytes(_photo())
    want = agent("infer", __import__("tests.cached_models", fromlist=["x"]).task_models()["yolo"],
                 tmp_path / "a.png", "--json", "-").doc["results"][0]["predictions"][0]
    assert got["task"] == "detect" and got["detections"] == want["detections"] and len(got["detections"]) == 3


def test_draw_returns_the_annotated_jpeg(detector):
    status, ctype, body = _post(detector, "/infer?draw=1", _photo())
    assert status == 200 and ctype == "image/jpeg"
    img = np.asarray(Image.open(io.BytesIO(body)))
    assert img.shape == (96, 128, 3)
    assert np.abs(img.astype(int) - 90).max() > 60          # something was drawn on the grey image


def test_draw_of_a_npy_body_is_a_400(detector):
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 64, 64, 3), dtype=np.float32))
    status, _, body = _post(detector, "/infer?draw=1", buf.getvalue())
    assert status == 400 and "draw=1 needs an image body" in json.loads(body)["error"]
