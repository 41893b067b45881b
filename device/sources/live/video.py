"""`--source video:CLIP`: a video file through OpenCV, as fast as it decodes (no frame dropped)
or with --realtime at its own frame rate (or --fps), like a camera: then the newest frame wins."""
from __future__ import annotations

import os
from typing import Iterator

from device.errors import EXIT_USAGE, AgentError
from device.sources.base import Item, Options, Source, pace
from device.sources.live import opencv


def _frames(cv2, cap, path: str, options: Options) -> Iterator[Item]:
    try:
        own = cap.get(cv2.CAP_PROP_FPS) or None
        rate = (options.fps or own or 30.0) if options.realtime else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        yield from opencv.frames(cv2, cap, path, options, pace(rate, options.stop), count)
    finally:
        cap.release()


def open_video(where: list, options: Options) -> Iterator[Item]:
    path = where[0]
    if not os.path.isfile(path):
        raise AgentError(f"video:{path}: no such file", EXIT_USAGE, "usage")
    cv2 = opencv.cv2_for("video:")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise AgentError(f"video:{path}: OpenCV cannot open it as a video", EXIT_USAGE, "usage")
    opencv.delivered(cv2, cap, options)
    options.facts["frames_available"] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return _frames(cv2, cap, path, options)


SOURCE = Source(name="video", open=open_video, frames=True)
