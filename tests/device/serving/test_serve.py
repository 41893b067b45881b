"""`serve`: endpoints, bad input, limits, concurrency, graceful shutdown, default bind address."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest

from tests.device.conftest import REPO, agent_env

pytestmark = pytest.mark.timeout(120)


class Server:
    def __init__(self, *args, env: dict = None):
        import tempfile
        self.log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block the server
        self.proc = subprocess.Popen([sys.executable, "-m", "device", "serve", *map(str, args), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     cwd=REPO, env=env or agent_env())
        line = self.proc.stdout.readline()
        assert "serving" in line, (line, self.stderr())
        self.address = line.split("http://", 1)[1].split()[0]
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, body: bytes = None, headers: dict = None):
        req = urllib.request.Request(self.url(path), data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(bundle):
    s = Server(bundle["model"], "--manifest", bundle["manifest"], "--workers", "2", "--max_body", "100000")
    yield s
    s.stop()


def _npy(arr: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0]).save(buf, format="PNG")
    return buf.getvalue()


def test_health_and_info(server):
    assert server.request("/health") == (200, {"status": "ok", "model": "int8.tflite"})
    status, info = server.request("/info")
    assert status == 200
    assert info["labels"][:2] == ["class0", "class1"]
    assert info["inputs"][0]["dtype"] == "int8" and info["preprocess"]["source"] == "manifest"
    assert info["runtime"]["name"] == "ai_edge_litert" and info["ops_delegated"] > 0


def test_infer_png_and_npy_match_the_host(server, bundle):
    for i in range(4):
        x = bundle["x"][i]
        for body in (_png(x), _npy(x)):
            status, out = server.request("/infer?top_k=3", body)
            assert status == 200, out
            assert len(out["top_k"]) == 3 and out["latency_us"] > 0
            assert out["top_k"][0]["index"] == bundle["pred"][i]
            assert out["top_k"][0]["label"] == f"class{bundle['pred'][i]}"


@pytest.mark.parametrize("path, body, status", [
    ("/infer", b"definitely not an image", 400),
    ("/infer", b"\x93NUMPY garbage", 400),
    ("/infer", "wrong-shape", 400),
    ("/infer?top_k=abc", "ok", 400),
    ("/infer?top_k=0", "ok", 400),
    ("/infer", b"", 400),
    ("/nope", b"x", 404),
    ("/infer", "too-big", 413),
])
def test_bad_requests_get_clear_4xx_json(server, bundle, path, body, status):
    if body == "wrong-shape":
        body = _npy(np.zeros((5, 5, 5), np.float32))
    elif body == "ok":
        body = _npy(bundle["x"][0])
    elif body == "too-big":
        body = b"\0" * 200000
    got, out = server.request(path, body)
    assert got == status and isinstance(out["error"], str) and "Traceback" not in out["error"]
    assert server.request("/health")[0] == 200  # still serving


def test_get_infer_is_405_and_length_is_required(server):
    assert server.request("/infer")[0] == 405
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /infer HTTP/1.0\r\n\r\n")
        assert b" 411 " in s.recv(4096).split(b"\r\n", 1)[0] + b" "


def test_concurrent_requests_match_single_threaded(server, bundle):
    n = 24
    bodies = [_npy(bundle["x"][i]) for i in range(n)]
    single = [server.request("/infer", b)[1]["top_k"] for b in bodies]
    results, errors = {}, []

    def client(worker: int):
        try:
            for rep in range(3):
                for i in range(worker, n, 6):
                    status, out = server.request("/infer", bodies[i])
                    assert status == 200, out
                    results[(i, rep)] = out["top_k"]
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 3 * n
    for (i, _), top in results.items():
        assert top == single[i]


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_sigterm_finishes_the_request_in_flight(bundle):
    s = Server(bundle["model"], "--manifest", bundle["manifest"])
    body = _npy(bundle["x"][0])
    conn = socket.create_connection(("127.0.0.1", s.port), timeout=20)
    conn.sendall(f"POST /infer HTTP/1.0\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:50])
    server = psutil.Process(s.proc.pid)
    mine = conn.getsockname()[1]

    def sockets():
        return server.net_connections(kind="inet")

    # readiness signals, not sleeps: the server has accepted our connection (an fd of its own) ...
    _wait_until(lambda: any(c.raddr and c.raddr.port == mine for c in sockets()), "the request accepted")
    s.proc.send_signal(signal.SIGTERM)
    # ... and after SIGTERM it has closed its listening socket: it now only waits for requests in flight
    _wait_until(lambda: not any(c.status == psutil.CONN_LISTEN for c in sockets()), "the listener closed")
    assert s.proc.poll() is None  # waiting for the request in flight
    conn.sendall(body[50:])
    response = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        response += chunk
    conn.close()
    assert response.startswith(b"HTTP/1.0 200")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["top_k"][0]["index"] == bundle["pred"][0]
    assert s.proc.wait(timeout=20) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()


def test_default_bind_is_loopback_and_wide_bind_warns(bundle):
    s = Server(bundle["model"])
    try:
        assert s.host == "127.0.0.1"
        listening = [c.laddr for c in psutil.Process(s.proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    finally:
        assert s.stop() == 0
    wide = Server(bundle["model"], "--host", "0.0.0.0")
    try:
        assert wide.host == "0.0.0.0"
    finally:
        wide.stop()
    assert "warning: serving on 0.0.0.0" in wide.stderr()


def test_token(bundle):
    s = Server(bundle["model"], "--manifest", bundle["manifest"], "--token", "s3cret")
    try:
        body = _npy(bundle["x"][1])
        assert s.request("/infer", body)[0] == 401
        assert s.request("/infer", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("/info")[0] == 401
        status, out = s.request("/infer", body, {"Authorization": "Bearer s3cret"})
        assert status == 200 and out["top_k"][0]["index"] == bundle["pred"][1]
        assert s.request("/health")[0] == 200
    finally:
        s.stop()


def test_model_that_fails_at_invoke_is_a_500_with_one_line(models):
    s = Server(models["invoke_fails"])
    try:
        status, out = s.request("/infer", _npy(np.zeros((12, 12), np.uint8)))
        assert status == 500 and out["error"].startswith("invoke failed") and "\n" not in out["error"]
        assert s.request("/health")[0] == 200
    finally:
        assert s.stop() == 0


def test_bad_model_fails_fast_with_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "device", "serve", str(bad), "--port", "0"], capture_output=True,
                          text=True, cwd=REPO, env=agent_env(), timeout=60)
    assert proc.returncode == 1 and "not a TFLite model" in proc.stderr and "Traceback" not in proc.stderr


def test_without_pillow_bad_images_are_400_not_500(bundle, tmp_path):
    """A board without Pillow: PGM still works, anything else undecodable is a 400 (was a 500)."""
    hide = tmp_path / "no_pillow" / "PIL"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('Pillow hidden by the test')\n")
    env = agent_env()
    env["PYTHONPATH"] = f"{hide.parent}{os.pathsep}{REPO}"
    s = Server(bundle["model"], "--manifest", bundle["manifest"], env=env)
    try:
        x = bundle["x"][2][:, :, 0]
        pgm = b"P5\n%d %d\n255\n" % (x.shape[1], x.shape[0]) + x.tobytes()
        status, out = s.request("/infer", pgm)
        assert status == 200 and out["top_k"][0]["index"] == bundle["pred"][2]
        for body in (b"P5 ab 2 255\n\0\0\0\0", b"P5 0 0 255\n", b"P5 12 12 255\n" + bytes(7), _png(bundle["x"][2])):
            status, out = s.request("/infer", body)
            assert status == 400, (body[:20], out)
            assert "Traceback" not in out["error"]
        assert "Pillow" in s.request("/infer", _png(bundle["x"][2]))[1]["error"]
    finally:
        assert s.stop() == 0
    assert "internal error" not in s.stderr()
