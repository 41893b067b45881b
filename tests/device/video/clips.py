"""Videos and image sequences the frame tests write themselves: moving coloured shapes through
OpenCV's writer, and the frames read back exactly as the agent's video source reads them."""
from __future__ import annotations

import os

import numpy as np


def write_clip(path: str, frames: int = 60, size: tuple = (160, 120), fps: float = 30.0,
               fourcc: str = "mp4v") -> str:
    """A clip of moving shapes (a red box sliding right, a green disc falling). mp4v decodes to
    slightly different pixels on aarch64 and x86 (FFmpeg's IDCT); FFV1 (lossless, in .avi) decodes
    to the same pixels everywhere, for comparing a board with the host."""
    import cv2
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        f = np.full((h, w, 3), 40, np.uint8)
        x = (5 + 2 * i) % max(1, w - 30)
        cv2.rectangle(f, (x, h // 6), (x + 30, h // 2), (0, 0, 255), -1)
        cv2.circle(f, (w // 2, (h // 4 + i) % h), max(4, h // 8), (0, 255, 0), -1)
        out.write(f)
    out.release()
    return str(path)


def damage_frames(path: str, indices: list) -> None:
    """Overwrite the JPEG data of these frames of an MJPG .avi with zeros, in place: the file stays
    a good AVI (chunk sizes and index unchanged), only those frames no longer decode."""
    data = bytearray(open(path, "rb").read())
    frames, at = [], 0
    while True:
        at = data.find(b"00dc", at)
        if at < 0:
            break
        size = int.from_bytes(data[at + 4:at + 8], "little")
        if data[at + 8:at + 10] == b"\xff\xd8":         # a movi chunk holding a JPEG, not the index
            frames.append((at + 8, size))
        at += 4
    for i in indices:
        start, size = frames[i]
        data[start:start + size] = bytes(size)
    with open(path, "wb") as f:
        f.write(data)


def frames_of(path: str) -> list:
    """Every frame as RGB uint8, decoded by OpenCV as the video: source does."""
    import cv2
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def save_pngs(frames: list, folder: str) -> list:
    """The frames as lossless PNGs (what `infer IMAGE...` reads), in order."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        paths.append(os.path.join(folder, f"{i:04d}.png"))
        Image.fromarray(f).save(paths[-1])
    return paths


def count_frames(path: str) -> int:
    return len(frames_of(path))
