"""`serve MODEL --source SPEC` (device/serving/live.py) as the real agent on a generated clip: the
MJPEG endpoint serves annotated frames, /metrics counts frames and stage times, and the page works
in a real Chromium: it shows frames and its numbers move."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.cached_models import task_models
from tests.device.conftest import REPO, agent_env
from tests.device.serving.browser import browser  # noqa: F401  (the fixture)
from tests.device.video import clips

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    clip = clips.write_clip(tmp_path_factory.mktemp("live") / "clip.mp4", frames=900)
    proc = subprocess.Popen([sys.executable, "-m", "device", "serve", task_models()["yolo"], "--port", "0",
                             "--source", f"video:{clip}", "--realtime"],
                            cwd=REPO, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
    assert match, line + proc.stderr.read() if proc.poll() is not None else line
    yield match.group(1)
    proc.terminate()
    proc.wait(timeout=30)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_the_mjpeg_endpoint_serves_annotated_frames(live):
    from PIL import Image
    with urllib.request.urlopen(live + "/stream", timeout=30) as r:
        assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=edgekit-frame"
        pictures = []
        while len(pictures) < 3:
            assert r.readline() == b"--edgekit-frame\r\n"
            headers = dict(r.readline().decode().strip().split(": ", 1) for _ in range(2))
            assert r.readline() == b"\r\n" and headers["Content-Type"] == "image/jpeg"
            pictures.append(r.read(int(headers["Content-Length"])))
            assert r.read(2) == b"\r\n"
    images = [Image.open(io.BytesIO(p)) for p in pictures]
    assert all(i.format == "JPEG" and i.size == (160, 120) for i in images)
    assert len(set(pictures)) == 3          # three different frames, not one repeated


def test_metrics_count_frames_and_stage_times(live):
    def frames():
        text = _get(live + "/metrics").decode()
        assert 'edgekit_frame_stage_seconds_bucket{stage="invoke",le="+Inf"}' in text
        assert "edgekit_frame_latency_seconds_count" in text and "edgekit_requests_total" in text
        return int(re.search(r"^edgekit_frames_total (\d+)$", text, re.M).group(1))
    first = frames()
    time.sleep(0.5)
    assert frames() > first > 0
    status = json.loads(_get(live + "/live"))
    assert status["last"]["detections"] and status["current_fps"] > 5 and status["source"]["spec"].startswith("video:")


def test_the_page_shows_frames_and_its_numbers_move(live, browser):  # noqa: F811
    page = browser.new_page()
    try:
        page.goto(live + "/")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30000)
        page.wait_for_function("Number(document.getElementById('frames').textContent) > 0", timeout=30000)
        first = int(page.text_content("#frames"))
        page.wait_for_timeout(1200)
        assert int(page.text_content("#frames")) > first
        assert float(page.text_content("#fps")) > 5
        assert "invoke" in page.text_content("#stages")
        assert '"detections"' in page.text_content("#last")
        size = page.evaluate("[document.getElementById('stream').naturalWidth, "
                             "document.getElementById('stream').naturalHeight]")
        assert size == [160, 120]
    finally:
        page.close()


def test_with_a_token_the_live_endpoints_want_it(tmp_path):
    import urllib.error
    clip = clips.write_clip(tmp_path / "clip.mp4", frames=30)
    proc = subprocess.Popen([sys.executable, "-m", "device", "serve", task_models()["yolo"], "--port", "0",
                             "--source", f"video:{clip}", "--token", "s3cret"],
                            cwd=REPO, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"on (http://127\.0\.0\.1:\d+) ", proc.stdout.readline()).group(1)
        for path in ("/", "/stream", "/live"):
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(url + path)
            assert err.value.code == 401
        assert b"edgekit live" in _get(url + "/?token=s3cret")
        assert json.loads(_get(url + "/live?token=s3cret"))["source"]["spec"] == f"video:{clip}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
