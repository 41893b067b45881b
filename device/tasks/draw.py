"""Pictures of an answer, for people: boxes with labels, a coloured class mask over the image, a
pose skeleton, or the top classes written in a corner. Pillow only (imported here, so a board
without it can still do everything else); the class-index mask PNG is the format evaluation reads."""
from __future__ import annotations

import io
from typing import Any, Optional

import numpy as np

from device.errors import AgentError


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise AgentError("drawing needs Pillow (pip install Pillow)", kind="input") from None
    return Image, ImageDraw


def palette(n: int) -> np.ndarray:
    """n distinct colours, the same for a class id on every picture (PASCAL VOC's bit pattern)."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def open_image(source: Any) -> Any:
    """A path or image bytes -> an RGB PIL image at its own size."""
    Image, _ = _pil()
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as img:
            return img.convert("RGB")
    except Exception:
        raise AgentError("cannot draw: the input is not an image Pillow reads", kind="input") from None


def from_array(arr: np.ndarray) -> Any:
    """(H,W,3) uint8 RGB pixels (a video frame) -> a PIL image to draw on."""
    Image, _ = _pil()
    return Image.fromarray(arr)


def annotate(image: Any, fields: dict, class_map: Optional[np.ndarray] = None) -> Any:
    """The image with the answer drawn on it (a copy)."""
    Image, ImageDraw = _pil()
    img = image.copy()
    if class_map is not None:
        colours = palette(int(class_map.max(initial=0)) + 1)
        colours[0] = 0
        overlay = Image.fromarray(colours[class_map])
        img = Image.blend(img, overlay, 0.5)
    pen = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 200))
    for det in fields.get("detections", []):
        colour = tuple(int(v) for v in palette(det["class_id"] + 2)[det["class_id"] + 1])
        pen.rectangle(det["box"], outline=colour, width=width)
        pen.text((det["box"][0] + width, det["box"][1] + width), f"{det['label']} {det['score']:.2f}", fill=colour)
    from device.tasks.keypoints import SKELETON
    for pose in fields.get("poses", []):
        pts = pose["keypoints"]
        for a, b in SKELETON:
            if min(pts[a]["score"], pts[b]["score"]) >= 0.2:
                pen.line([(pts[a]["x"], pts[a]["y"]), (pts[b]["x"], pts[b]["y"])], fill=(0, 255, 0), width=width)
        for p in pts:
            if p["score"] >= 0.2:
                pen.ellipse([p["x"] - width, p["y"] - width, p["x"] + width, p["y"] + width], fill=(255, 0, 0))
    for i, t in enumerate(fields.get("top_k", [])[:5]):
        pen.text((4, 4 + 12 * i), f"{t['label']} {t['score']:.3f}", fill=(255, 255, 0))
    return img


def write_picture(img: Any, path: str) -> None:
    from device.contract.fileio import atomic_write_bytes
    buf = io.BytesIO()
    img.save(buf, format="PNG" if path.lower().endswith(".png") else "JPEG", quality=90)
    atomic_write_bytes(path, buf.getvalue())


def jpeg_bytes(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_mask(class_map: np.ndarray, path: str) -> None:
    """The class-index PNG (one byte per pixel, the class id; PASCAL VOC's mask format)."""
    Image, _ = _pil()
    if class_map.max(initial=0) > 254:
        raise AgentError(f"{path}: class ids above 254 do not fit a class-index PNG", kind="input")
    from device.contract.fileio import atomic_write_bytes
    buf = io.BytesIO()
    Image.fromarray(class_map.astype(np.uint8), mode="L").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
