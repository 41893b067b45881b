"""Network streams (device/sources/live/network.py) against a real MJPEG-over-HTTP server (the way
IP cameras serve): a stream that ends is reconnected with back-off and counted; a server that
stops answering makes the agent give up after --reconnect failures with exit 1, summary printed."""
from __future__ import annotations

import http.server
import json
import threading

import numpy as np
import pytest

from tests.cached_models import task_models
from tests.device.conftest import run_agent

pytestmark = pytest.mark.timeout(120)
FRAMES_PER_CONNECTION = 10


class Camera(http.server.BaseHTTPRequestHandler):
    """Two connections get FRAMES_PER_CONNECTION JPEG frames each, then the camera is 'gone' (404)."""
    served = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        import cv2
        Camera.served += 1
        if Camera.served > 2:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(FRAMES_PER_CONNECTION):
            jpg = cv2.imencode(".jpg", np.full((48, 64, 3), 20 * i, np.uint8))[1].tobytes()
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                             % (len(jpg), jpg))


def test_a_dropping_stream_is_reconnected_counted_and_given_up_with_exit_1():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/video"
    try:
        run = run_agent("infer", task_models()["segment"], "--source", url, "--reconnect", "1", "--json", "-")
    finally:
        server.shutdown()
    assert run.code == 1
    assert run.stderr.strip().splitlines()[-1] == \
        f"edgekit-agent: error: {url}: gave up after 1 failed reconnects (3 reconnects in all)"
    summary = json.loads(run.stdout.splitlines()[-1])["summary"]
    assert summary["frames"] + summary["dropped"] == 2 * FRAMES_PER_CONNECTION
    assert summary["source"]["reconnects"] == 3 and summary["source"]["delivered"]["width"] == 64
    assert "gave up" in summary["error"]


def test_a_stream_that_never_answers_gives_up_after_the_back_off():
    run = run_agent("infer", task_models()["segment"], "--source", "rtsp://127.0.0.1:9/none", "--reconnect", "2")
    assert run.code == 1
    assert run.stderr.strip().splitlines()[-1] == \
        "edgekit-agent: error: rtsp://127.0.0.1:9/none: gave up after 2 failed reconnects (2 reconnects in all)"
