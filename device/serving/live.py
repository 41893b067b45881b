"""`serve MODEL --source SPEC`: the frame pipeline running beside the HTTP service.

GET /stream is an MJPEG stream (multipart/x-mixed-replace) of the annotated frames, GET / a small
page showing it with the current fps, the stage times and the last answer (polling GET /live, the
same figures as JSON), and /metrics gains the frame counters and stage histograms. The pipeline
borrows interpreters from the served model's pool, like a request does. With --token, these
endpoints take the token as the Authorization header or as ?token= (an <img> sends no headers).
"""
from __future__ import annotations

import hmac
import json
import threading
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

from device.video import command, pipeline
from device.video.stats import BUCKETS, STAGES, Stats

PATHS = ("/", "/stream", "/live")
BOUNDARY = "edgekit-frame"


class Live:
    """The running pipeline and what it last produced (an annotated JPEG, an answer)."""

    def __init__(self, pred: Any, args: Any, current: Optional[Callable[[], Any]] = None):
        """`current`: the served model now (serve --follow switches it); frames follow it."""
        pipeline.check_model(pred)
        self.stop = threading.Event()
        source, items, self.options = command.open_frames(args, self.stop)
        self.stats = Stats()
        self.cond = threading.Condition()
        self.jpeg: Optional[bytes] = None
        self.seq = 0
        self.last: Optional[dict] = None
        self.ended, self.error = False, None
        settings = pipeline.Settings(k=5, max_rate=args.max_rate, max_frames=args.frames,
                                     paced=source.paced or args.realtime, draw=True)
        outs: list = [self]
        if getattr(args, "on_detect", None):
            from device.video.trigger import Trigger
            outs.append(Trigger(args.on_detect, args.exec_cmd, args.webhook, args.cooldown))
        self.pipeline = pipeline.Pipeline(pred, items, settings, outs, self.stop, self.stats, current)
        self.thread = threading.Thread(target=self._run, daemon=True, name="edgekit-live")

    # ------------------------------------------------------------ the pipeline's sink

    def frame(self, record: dict, picture: Any) -> None:
        from device.tasks import draw
        jpeg = draw.jpeg_bytes(picture)
        with self.cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self.cond.notify_all()

    def done(self, record: dict) -> None:
        self.last = record

    def _run(self) -> None:
        error = self.pipeline.run()
        with self.cond:
            self.ended, self.error = True, str(error) if error else None
            self.cond.notify_all()

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()
        self.thread.join(timeout=2.0)

    # ------------------------------------------------------------ what the endpoints read

    def next_frame(self, after: int, wait: float) -> Optional[tuple]:
        """(seq, jpeg) of a frame newer than `after`, or None after `wait` seconds without one."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or self.ended or self.stop.is_set(), timeout=wait)
            return (self.seq, self.jpeg) if self.seq > after and self.jpeg is not None else None

    def status(self) -> dict:
        summary = self.stats.summary(self.options.facts)
        return dict(summary, current_fps=self.stats.current_fps(), ended=self.ended, error=self.error,
                    last=self.last, model_sha256=self.pipeline.pred.meta.get("sha256"))

    def metrics_text(self) -> str:
        counts, hist, sums = self.stats.histograms()
        out = []
        for name, key, text in (("edgekit_frames_total", "frames", "Frames answered by the frame pipeline."),
                                ("edgekit_frames_dropped_total", "dropped", "Frames replaced by a newer one "
                                 "before they were answered."),
                                ("edgekit_frames_corrupt_total", "corrupt", "Frames the source could not decode."),
                                ("edgekit_frames_failed_total", "failed", "Frames the model failed on.")):
            out += [f"# HELP {name} {text}", f"# TYPE {name} counter", f"{name} {counts[key]}"]
        out += ["# HELP edgekit_source_reconnects_total Reconnects of a network stream.",
                "# TYPE edgekit_source_reconnects_total counter",
                f"edgekit_source_reconnects_total {self.options.facts.get('reconnects', 0)}",
                "# HELP edgekit_frames_per_second Frames answered per second over the last 30.",
                "# TYPE edgekit_frames_per_second gauge",
                f"edgekit_frames_per_second {self.stats.current_fps() or 0.0}"]
        for metric, keys, label in (("edgekit_frame_stage_seconds", STAGES, "stage"),
                                    ("edgekit_frame_latency_seconds", ("latency",), None)):
            what = "Time per frame in each pipeline stage." if label else "Capture-to-result time per frame."
            out += [f"# HELP {metric} {what}", f"# TYPE {metric} histogram"]
            for key in keys:
                sel = f'{label}="{key}",' if label else ""
                running = 0
                for bound, n in zip(BUCKETS + (None,), hist[key]):
                    running += n
                    le = "+Inf" if bound is None else f"{bound:g}"
                    out.append(f'{metric}_bucket{{{sel}le="{le}"}} {running}')
                tag = f"{{{sel[:-1]}}}" if sel else ""
                out += [f"{metric}_sum{tag} {sums[key]!r}", f"{metric}_count{tag} {running}"]
        return "\n".join(out) + "\n"


def _token_ok(handler: Any) -> bool:
    if not handler.token or handler._authorised():
        return True
    given = parse_qs(urlparse(handler.path).query).get("token", [""])[0]
    return hmac.compare_digest(given.encode(), handler.token.encode())


def answer(handler: Any, path: str) -> None:
    """GET /, /stream or /live for the handler's live pipeline."""
    live: Live = handler.live
    if not _token_ok(handler):
        handler._send(401, {"error": "missing or wrong token"})
    elif path == "/":
        from device.serving.livepage import PAGE
        handler._send(200, PAGE, "text/html; charset=utf-8")
    elif path == "/live":
        handler._send(200, json.dumps(live.status()).encode())
    else:
        _stream(handler, live)


def _stream(handler: Any, live: Live) -> None:
    """Annotated frames as they come, until the client goes, the source ends or the service stops."""
    handler.status = 200
    handler.send_response(200)
    handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.close_connection = True
    seq = 0
    while not live.stop.is_set():
        got = live.next_frame(seq, 1.0)
        if got is None:
            if live.ended:
                return
            continue
        seq, jpeg = got
        handler.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                            .encode() + jpeg + b"\r\n")
        handler.wfile.flush()
