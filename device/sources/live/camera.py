"""`--source camera:N`: a V4L2 camera (/dev/videoN) through OpenCV: USB webcams, and the Pi camera
through libcamera's V4L2 compatibility. --size/--fps are requested; what the camera delivers is
reported. No such camera: one line naming the video devices that exist, exit 2."""
from __future__ import annotations

import glob
import os
from typing import Iterator

from device.errors import EXIT_USAGE, AgentError
from device.sources.base import Item, Options, Source
from device.sources.live import opencv


def _devices() -> str:
    found = sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    return ", ".join(found) if found else "none"


def _frames(cv2, cap, name: str, options: Options) -> Iterator[Item]:
    try:
        yield from opencv.frames(cv2, cap, name, options, lambda i: None)
    finally:
        cap.release()


def open_camera(where: list, options: Options) -> Iterator[Item]:
    text = where[0]
    if not text.isdigit():
        raise AgentError(f"camera:{text}: expected camera:N (N the number of /dev/videoN)", EXIT_USAGE, "usage")
    device = f"/dev/video{int(text)}"
    if not os.path.exists(device):
        raise AgentError(f"camera:{text}: no {device} (video devices here: {_devices()})", EXIT_USAGE, "usage")
    cv2 = opencv.cv2_for("camera:")
    cap = cv2.VideoCapture(int(text), cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        raise AgentError(f"camera:{text}: {device} exists but does not open as a camera (video devices "
                         f"here: {_devices()})", EXIT_USAGE, "usage")
    opencv.request(cv2, cap, options)
    opencv.delivered(cv2, cap, options)
    return _frames(cv2, cap, f"camera:{text}", options)


SOURCE = Source(name="camera", open=open_camera, frames=True, paced=True)
