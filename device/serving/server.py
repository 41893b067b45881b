"""`serve`: a small HTTP inference service on the board (standard library only).

Endpoints (a contract): GET /health, GET /info, GET /metrics (Prometheus text), POST /infer
(?top_k=K) with an image or .npy as the raw body; with --source SPEC also GET / (a live page),
/stream (MJPEG of the annotated frames) and /live (its figures), device/serving/live.py; /info and every /infer answer name the release
and the model sha256 that served them. With --follow LINK the service moves to the release the
link names without dropping a request (device/serving/swap.py). Bound to 127.0.0.1 unless --host says otherwise. TFLite interpreters are not
thread-safe, so each of the --workers interpreters serves one request at a time; requests
beyond that wait (up to the request timeout) and then get 503. SIGTERM stops accepting
connections and lets in-flight requests finish.
"""
from __future__ import annotations

import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

from device import __version__, defaults
from device.contract import inputs, results
from device.errors import AgentError, EXIT_OK, one_line
from device.measure.isolate import package_root
from device.runtimes import registry as runtime
from device.serving.accesslog import AccessLog
from device.serving.metrics import CONTENT_TYPE, Metrics
from device.serving.predictor import Busy, Predictor
from device.serving.swap import Follower, Served, release_loader, release_of

MAX_CONNECTIONS = 64


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


ENDPOINTS = ("/health", "/info", "/infer", "/metrics", "/", "/stream", "/live")   # the last three: --source


class Handler(BaseHTTPRequestHandler):
    """One request: 1. counted and logged (_guard), 2. given a connection slot and its errors turned
    into a status (_guarded), 3. answered by the endpoint. make_handler binds a server's settings
    as class attributes; follower.served is read ONCE per request: that model answers it, even
    across a switch."""
    server_version = f"edgekit-agent/{__version__}"
    follower: Follower
    max_body: int
    token: Optional[str]
    request_timeout: float
    access_log: Optional[AccessLog]
    metrics: Metrics
    slots: threading.BoundedSemaphore
    live: Any = None        # serve --source: device/serving/live.py's running pipeline

    def setup(self):
        self.request.settimeout(self.request_timeout)
        super().setup()

    def log_message(self, fmt: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Only failed requests go to stderr (unless --access_log without a path), so a
        long-running server's log stays small; --access_log PATH writes JSON lines instead."""
        if (self.access_log and self.access_log.to_stderr) or (str(code).isdigit() and int(code) >= 400):
            super().log_request(code, size)

    def _send(self, status: int, payload: dict, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_picture(self, body: bytes, result: dict, class_map: Any) -> None:
        """/infer?draw=1: the image with the answer drawn on it, as JPEG (not for .npy bodies)."""
        from device.tasks import draw
        if body.startswith(b"\x93NUMPY"):
            raise HttpError(400, "draw=1 needs an image body, not .npy")
        try:
            picture = draw.jpeg_bytes(draw.annotate(draw.open_image(body), result, class_map))
        except AgentError as exc:
            raise HttpError(400, str(exc))
        self._send(200, picture, "image/jpeg")

    def _authorised(self) -> bool:
        if not self.token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def _require_token(self) -> None:
        if not self._authorised():
            raise HttpError(401, "missing or wrong token")

    def _guard(self, work) -> None:
        """1. Metrics for every request, and its access-log line."""
        path = urlparse(self.path).path
        endpoint = path if path in ENDPOINTS else "other"
        self.status, self.release, started = 0, None, time.monotonic()
        self.metrics.begin()
        try:
            self._guarded(work)
        finally:
            self.metrics.end(endpoint, self.status)
            if self.access_log and self.access_log.path:
                self.access_log.write({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "client": self.client_address[0], "method": self.command,
                                       "path": path, "status": self.status,
                                       "ms": round(1000 * (time.monotonic() - started), 3),
                                       "release": getattr(self, "release", None)})

    def _guarded(self, work) -> None:
        """2. A connection slot (503 without one), and every failure as a status and a JSON error."""
        if not self.slots.acquire(blocking=False):
            self.close_connection = True
            self._send(503, {"error": "too many connections"})
            return
        try:
            work()
        except HttpError as exc:
            self.close_connection = exc.status >= 500 or exc.status in (411, 413)
            self._send(exc.status, {"error": str(exc)})
        except AgentError as exc:  # bad input, except when the model itself failed to run
            self._send(500 if exc.kind == "invoke" else 400, {"error": str(exc)})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never leak a traceback to the client
            self.close_connection = True
            sys.stderr.write(f"internal error: {type(exc).__name__}: {one_line(exc)}\n")
            self._send(500, {"error": "internal error"})
        finally:
            self.slots.release()

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _get(self) -> None:
        """3. GET /health, /info, /metrics."""
        path = urlparse(self.path).path
        served = self.follower.served
        if path == "/health":
            self._send(200, {"status": "ok", "model": served.predictor.meta["name"]})
        elif path == "/info":
            self._require_token()
            self._send(200, dict(served.predictor.info(), **self.follower.facts()))
        elif path == "/metrics":
            self._require_token()
            self._send(200, self._metrics_text(served).encode(), CONTENT_TYPE)
        elif path == "/infer":
            raise HttpError(405, "use POST /infer with the image or .npy as the body")
        elif self.live is not None and path in ("/", "/stream", "/live"):
            from device.serving import live
            live.answer(self, path)
        else:
            raise HttpError(404, f"no such endpoint {path}")

    def _metrics_text(self, served: Served) -> str:
        return (self.live.metrics_text() if self.live is not None else "") + self.metrics.render({"release": served.release or "", "sha256": served.sha256,
                                    "model": served.predictor.meta["name"], "variant": served.variant or "",
                                    "runtime": served.predictor.runtime["name"],
                                    "runtime_version": served.predictor.runtime["version"] or "",
                                    "version": __version__})

    def _body(self) -> bytes:
        """POST /infer's body: Content-Length present, within --max_body, not empty, all of it read."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpError(411, "Content-Length required")
        if int(length) > self.max_body:
            raise HttpError(413, f"body of {int(length)} bytes exceeds the limit of {self.max_body}")
        if int(length) == 0:
            raise HttpError(400, "empty body: send an image or a .npy tensor")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise HttpError(400, "body shorter than Content-Length")
        return body

    def _post(self) -> None:
        """3. POST /infer[?top_k=K]: the token, the body, K, then one prediction from the served model."""
        url = urlparse(self.path)
        if url.path != "/infer":
            raise HttpError(404, f"no such endpoint {url.path}")
        self._require_token()
        body = self._body()
        try:
            k = int(parse_qs(url.query).get("top_k", [defaults.TOP_K])[0])
        except ValueError:
            raise HttpError(400, "top_k must be an integer")
        if k < 1:
            raise HttpError(400, "top_k must be >= 1")
        served = self.follower.served
        self.release = served.release
        draw = parse_qs(url.query).get("draw", ["0"])[0] not in ("0", "", "false")
        tensor, geometry = served.predictor.fitted_from_bytes(body)
        try:
            result, class_map = served.predictor.predict_full(tensor, k, self.request_timeout, geometry, mask=draw)
        except Busy:
            raise HttpError(503, "all workers are busy; try again")
        self.metrics.observe(result["latency_us"] / 1e6)
        if draw:
            self._send_picture(body, result, class_map)
            return
        self._send(200, dict(result, release=served.release, sha256=served.sha256))


def make_handler(follower: Follower, max_body: int, token: Optional[str], timeout: float,
                 access_log: Optional[AccessLog] = None, metrics: Optional[Metrics] = None, live: Any = None) -> type:
    """A Handler class bound to one server's model, limits, token, logs, metrics and live pipeline."""
    return type("Handler", (Handler,), {
        "follower": follower, "max_body": max_body, "token": token, "request_timeout": timeout,
        "access_log": access_log, "metrics": metrics or Metrics(), "live": live,
        "slots": threading.BoundedSemaphore(MAX_CONNECTIONS)})


def main(args, labels: Optional[list]) -> int:
    """Run until SIGTERM/SIGINT; errors before serving are one line and exit code 1 or 2."""
    manifest = inputs.load_manifest(args.manifest)
    rt = runtime.resolve(args.runtime)
    path = os.path.realpath(args.model) if args.follow else args.model   # name the release actually served
    decoding = {"task": args.task, "threshold": args.threshold, "iou": args.iou}   # kept for every release
    model = Predictor(path, rt, args.workers, args.num_threads, manifest, labels, **decoding)
    metrics = Metrics()
    served = Served(model, release_of(args.model) if args.follow else None, results.variant_for(manifest, args.model))
    if args.follow and served.variant is None:
        raise AgentError("--follow needs --manifest naming the model as a variant (to pick the same "
                         "variant from a new release)", kind="usage", exit_code=2)
    follower = Follower(served, release_loader(rt, args.workers, args.num_threads, labels, **decoding), args.follow,
                        on_switch=metrics.switched)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"edgekit-agent: warning: serving on {args.host}, reachable from the network"
              + ("" if args.token else " without a token (set --token or EDGEKIT_TOKEN)"), file=sys.stderr)
    access_log = AccessLog.from_args(args.access_log, args.access_log_max_mb)
    feed = None
    if getattr(args, "source", None):
        from device.serving.live import Live
        # a bad spec, no camera: one line and exit 2 before listening; frames follow the served release
        feed = Live(model, args, lambda: follower.served.predictor)
    handler = make_handler(follower, args.max_body, args.token, defaults.SERVE_TIMEOUT_SECS, access_log, metrics,
                           feed)
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler)
    except (OSError, OverflowError) as exc:  # OverflowError: a port above 65535
        raise AgentError(f"cannot listen on {args.host}:{args.port}: "
                         f"{getattr(exc, 'strerror', None) or one_line(exc)}", kind="serve") from None
    server.daemon_threads = False      # server_close() waits for in-flight requests
    host, port = server.server_address[:2]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.state:
        follower.state_path = args.state
        root = package_root()     # the release whose agent.pyz this process runs: deploy must not prune it
        follower.state_extra = {"host": host, "port": port, "token": args.token or None,
                                "agent_release": os.path.basename(os.path.dirname(os.path.realpath(root)))
                                if root.endswith(".pyz") else None,
                                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        follower.write_state()
    follower.start()
    if feed is not None:
        feed.start()
    print(f"serving {model.meta['name']} on http://{host}:{port} ({rt.name} {rt.version or ''}, "
          f"{model.workers} workers)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        follower.stopped.set()
        if feed is not None:
            feed.close()        # ends the MJPEG streams, so server_close does not wait on them
        server.server_close()
        if args.state:
            try:
                os.unlink(args.state)
            except OSError:
                pass
    print("stopped", flush=True)
    return EXIT_OK
