"""`--source rtsp://...` / `http(s)://...`: a network stream (an IP camera) through OpenCV's FFmpeg.
A stream that drops or does not answer is reconnected with back-off (0.5 s doubling, at most 8 s;
every reconnect counted), never a crash; after --reconnect consecutive failed attempts it gives
up with exit 1. A reconnect that delivers frames starts the count again."""
from __future__ import annotations

import time
from typing import Iterator

from device.errors import EXIT_FAILED, AgentError
from device.sources.base import Item, Options, Source
from device.sources.live import opencv

MAX_BACKOFF = 8.0
TIMEOUT_MS = 5000       # opening and each read: an IP camera that hangs is a dropped stream


def _open(cv2, url: str):
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, TIMEOUT_MS]
    try:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    except Exception:       # older OpenCV: no open parameters
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    return cap


def _stream(cv2, url: str, options: Options, first) -> Iterator[Item]:
    stop, facts = options.stop, options.facts
    facts.setdefault("reconnects", 0)
    failures, cap = 0, first
    while True:
        got = 0
        if cap is not None and cap.isOpened():
            opencv.request(cv2, cap, options)
            opencv.delivered(cv2, cap, options)
            try:
                for item in opencv.frames(cv2, cap, url, options, lambda i: None):
                    got += 1
                    yield item
            finally:
                cap.release()
        elif cap is not None:
            cap.release()
        if stop is not None and stop.is_set():
            return
        failures = 0 if got else failures + 1
        if failures > options.reconnects:
            raise AgentError(f"{url}: gave up after {options.reconnects} failed reconnects "
                             f"({facts['reconnects']} reconnects in all)", EXIT_FAILED, "source")
        delay = min(MAX_BACKOFF, options.backoff * 2 ** max(0, failures - 1))
        if stop is not None:
            if stop.wait(delay):
                return
        else:
            time.sleep(delay)
        facts["reconnects"] += 1
        cap = _open(cv2, url)


def open_network(where: list, options: Options) -> Iterator[Item]:
    cv2 = opencv.cv2_for(where[0].split(":", 1)[0] + "://")
    return _stream(cv2, where[0], options, _open(cv2, where[0]))


SOURCE = Source(name="network", open=open_network, frames=True, paced=True)
