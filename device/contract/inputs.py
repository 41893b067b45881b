"""Turning data into input tensors: random bench inputs, .npy files, and pixels -> quantised tensors.

The pixel path must match the host bit for bit (docs/contracts.md): images are decoded, converted
to the model's channels and fitted to its size (`fit_image`: stretch, or centre crop to the aspect
then resize), then `pixels_to_float` (colour order, f = pixel*scale + offset in float32, per channel
when the scale/offset are lists) and `quantize` (q = clip(np.round(f / input_scale) + zero_point)).
This module is the one place these rules live: the host imports it for evaluation and calibration.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from device import defaults
from device.contract.manifest import load_manifest  # noqa: F401  (numpy-free home; callers import it from here too)
from device.errors import AgentError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm", ".gif", ".tif", ".tiff", ".webp")


Number = Union[float, list]  # one value, or one per channel

# Named pixel rules (PREPROCESS=): f = pixel * scale + offset, per channel when a list.
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PRESETS = {
    "unit": (1.0 / 255.0, 0.0),                   # [0, 1]
    "signed": (2.0 / 255.0, -1.0),                # [-1, 1]
    "raw": (1.0, 0.0),                            # 0..255
    "imagenet": ([1.0 / (255.0 * s) for s in _STD], [-m / s for m, s in zip(_MEAN, _STD)]),  # (x/255-mean)/std
}
COLOR_ORDERS = ("RGB", "BGR")
RESIZE_MODES = ("stretch", "crop", "letterbox")
LETTERBOX_FILL = 114   # the grey Ultralytics pads with


@dataclass
class Preprocess:
    """How raw 0..255 pixels become the model's input (from the manifest, else by convention)."""
    height: int
    width: int
    channels: int
    pixel_scale: Number
    pixel_offset: Number
    source: str  # "manifest" | "convention" | "override"
    color_order: str = "RGB"   # channel order the model wants; pixels are decoded as RGB
    resize: str = "stretch"    # "stretch" | "crop" (centre crop to the model's aspect, then resize)
    #                            | "letterbox" (scale to fit, pad with grey: Ultralytics YOLO)


@dataclass(frozen=True)
class Geometry:
    """Where a source image sits in the model's input: source pixels (x, y) map to model pixels
    ((x - off_x) * sx + pad_x, (y - off_y) * sy + pad_y). One rule for stretch, crop and letterbox,
    used to fit the image and, inverted, to put boxes, masks and keypoints back on the original."""
    src_w: int
    src_h: int
    sx: float
    sy: float
    off_x: float = 0.0     # crop: the left/top of the kept box in source pixels
    off_y: float = 0.0
    pad_x: float = 0.0     # letterbox: the grey border left/top in model pixels
    pad_y: float = 0.0
    box: tuple = ()        # (left, top, width, height) of the source image inside the model input

    def to_source(self, x: np.ndarray, y: np.ndarray) -> tuple:
        """Model-input pixel coordinates -> the source image's pixel coordinates."""
        return (x - self.pad_x) / self.sx + self.off_x, (y - self.pad_y) / self.sy + self.off_y


def geometry_for(src_w: int, src_h: int, pre: "Preprocess") -> Geometry:
    """How an image of src_w x src_h is fitted to the model's input under pre.resize."""
    W, H = pre.width, pre.height
    if pre.resize == "letterbox":
        r = min(W / src_w, H / src_h)
        new_w, new_h = max(1, int(round(src_w * r))), max(1, int(round(src_h * r)))
        left, top = int(round((W - new_w) / 2 - 0.1)), int(round((H - new_h) / 2 - 0.1))
        return Geometry(src_w, src_h, new_w / src_w, new_h / src_h, pad_x=left, pad_y=top,
                        box=(left, top, new_w, new_h))
    if pre.resize == "crop":
        want = W / H
        cw, ch = (min(src_w, round(src_h * want)), src_h) if src_w / src_h >= want else \
            (src_w, min(src_h, round(src_w / want)))
        left, top = (src_w - cw) // 2, (src_h - ch) // 2
        return Geometry(src_w, src_h, W / cw, H / ch, off_x=left, off_y=top, box=(0, 0, W, H))
    return Geometry(src_w, src_h, W / src_w, H / src_h, box=(0, 0, W, H))


def random_input(spec: dict, rng: np.random.Generator) -> np.ndarray:
    """Random data in the tensor's dtype and a plausible range (like benchmark_model)."""
    shape = [max(1, d) for d in spec["shape"]]
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float64).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (info.min, info.max) if dtype.itemsize == 1 else (0, 100)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 1, size=shape, endpoint=True).astype(bool)
    raise AgentError(f"input {spec['name']!r} has dtype {dtype.name}, which random inputs do not support",
                     kind="input")


def load_npy(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise AgentError(f"{path}: no such file", kind="input")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise AgentError(f"{path}: not a readable .npy file ({type(exc).__name__})", kind="input") from None


def check_fits(array: np.ndarray, spec: dict, label: str) -> np.ndarray:
    """The array as the tensor wants it, or a clear error (dynamic dims, written -1, accept any size)."""
    dtype = np.dtype(spec["dtype"])
    if array.dtype != dtype:
        raise AgentError(f"{label}: dtype {array.dtype.name} does not match model input "
                         f"{spec['name']!r} dtype {dtype.name}", kind="input")
    signature = spec.get("shape_signature") or spec["shape"]
    if array.ndim != len(signature) or any(s not in (-1, a) for s, a in zip(signature, array.shape)):
        raise AgentError(f"{label}: shape {list(array.shape)} does not match model input "
                         f"{spec['name']!r} shape {list(signature)}", kind="input")
    return array


def quantize(f: np.ndarray, spec: dict) -> np.ndarray:
    """Float32 features -> the input tensor's dtype, with the model's own scale/zero-point."""
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "f":
        return f.astype(dtype)
    q = spec.get("quantization")
    if not q or not q["scale"]:
        raise AgentError(f"input {spec['name']!r} is {dtype.name} without quantisation parameters; "
                         "cannot map pixels to it", kind="input")
    info = np.iinfo(dtype)
    scaled = np.round(f / np.float32(q["scale"])) + q["zero_point"]
    return np.clip(scaled, info.min, info.max).astype(dtype)


def preprocess_for(spec: dict, manifest: Optional[dict] = None, pixel_scale: Optional[float] = None,
                   pixel_offset: Optional[float] = None) -> Preprocess:
    """The manifest's preprocessing, else the usual convention for the model's input.

    Convention for third-party models: quantised inputs take pixels directly (uint8 q = pixel,
    int8 q = pixel - 128, i.e. f is chosen so that quantising it gives exactly that), float inputs
    take pixel / 255.
    """
    shape = [max(1, d) for d in spec["shape"]]
    if len(shape) == 4:
        h, w, c = shape[1], shape[2], shape[3]
    elif len(shape) == 3:
        h, w, c = shape[1], shape[2], 1
    else:
        raise AgentError(f"input {spec['name']!r} has shape {spec['shape']}, not an image (NHWC)",
                         kind="input")
    order, resize = "RGB", "stretch"
    if manifest and manifest.get("input"):   # a non-image bundle has none: bench only
        mi = manifest["input"]
        scale, offset, source = _number(mi["pixel_scale"]), _number(mi.get("pixel_offset", 0.0)), "manifest"
        h, w, c = int(mi.get("height", h)), int(mi.get("width", w)), int(mi.get("channels", c))
        order, resize = str(mi.get("color_order", "RGB")).upper(), str(mi.get("resize", "stretch"))
        if order not in COLOR_ORDERS or resize not in RESIZE_MODES:
            raise AgentError(f"manifest input: color_order {order!r} / resize {resize!r} not one of "
                             f"{COLOR_ORDERS} / {RESIZE_MODES}", kind="manifest")
    else:
        dtype = np.dtype(spec["dtype"])
        q = spec.get("quantization")
        if dtype.kind in "iu" and q and q["scale"]:
            # choose f so that round(f/s) + zp == pixel (uint8) or pixel - 128 (int8)
            shift = -128 if dtype == np.int8 else 0
            scale, offset = float(q["scale"]), float((shift - q["zero_point"]) * q["scale"])
        else:
            scale, offset = 1.0 / 255.0, 0.0
        source = "convention"
    if pixel_scale is not None or pixel_offset is not None:
        scale = pixel_scale if pixel_scale is not None else scale
        offset = pixel_offset if pixel_offset is not None else offset
        source = "override"
    return Preprocess(h, w, c, scale, offset, source, order, resize)


def _number(value: Any) -> Number:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


def _per_channel(value: Number, channels: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 1 and arr.size not in (1, channels):
        raise AgentError(f"{what} has {arr.size} values but the model has {channels} channels", kind="input")
    return arr.reshape(-1) if arr.ndim else arr


def pixels_to_float(pixels: np.ndarray, pre: Preprocess) -> np.ndarray:
    """(N,H,W[,C]) uint8 RGB/gray pixels at the model's size -> float32 features (the pixel rule)."""
    if pixels.ndim == 3 and pre.channels == 1:
        pixels = pixels[..., None]
    if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (pre.height, pre.width, pre.channels):
        raise AgentError(f"images are {list(pixels.shape[1:])} (H,W,C) but the model expects "
                         f"{[pre.height, pre.width, pre.channels]}", kind="input")
    if pre.color_order == "BGR" and pre.channels == 3:
        pixels = pixels[..., ::-1]
    scale = _per_channel(pre.pixel_scale, pre.channels, "pixel_scale")
    offset = _per_channel(pre.pixel_offset, pre.channels, "pixel_offset")
    return pixels.astype(np.float32) * scale + offset


def pixels_to_input(pixels: np.ndarray, spec: dict, pre: Preprocess) -> np.ndarray:
    """(N,H,W[,C]) uint8 pixels -> the model's input tensor (N,H,W,C) in its dtype."""
    return quantize(pixels_to_float(pixels, pre), spec)


def fit_image(img: Any, pre: Preprocess) -> np.ndarray:
    """A PIL image -> (H,W,C) uint8 at the model's size and channels (the resize rule, `geometry_for`)."""
    Image = _pillow()
    img = img.convert("L" if pre.channels == 1 else "RGB")
    g = geometry_for(img.width, img.height, pre)
    if pre.resize == "crop":
        cw, ch = round(pre.width / g.sx), round(pre.height / g.sy)
        if (cw, ch) != img.size:
            img = img.crop((int(g.off_x), int(g.off_y), int(g.off_x) + cw, int(g.off_y) + ch))
    left, top, new_w, new_h = g.box
    if img.size != (new_w, new_h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    if (new_w, new_h) != (pre.width, pre.height):      # letterbox: the grey border around it
        canvas = Image.new(img.mode, (pre.width, pre.height), LETTERBOX_FILL if img.mode == "L" else
                           (LETTERBOX_FILL,) * 3)
        canvas.paste(img, (left, top))
        img = canvas
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def fit_pixels(arr: np.ndarray, pre: Preprocess) -> np.ndarray:
    """(H,W[,C]) uint8 pixels of any size -> the model's size and channels, as `fit_image` does."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.shape[:2] == (pre.height, pre.width) and (arr.ndim == 2) == (pre.channels == 1):
        return arr[..., None] if arr.ndim == 2 else arr
    Image = _pillow()
    if Image is None:
        return _resize_nearest(arr if arr.ndim == 3 else arr[..., None], pre)
    return fit_image(Image.fromarray(arr), pre)


def array_to_tensor(arr: np.ndarray, spec: dict, pre: Preprocess, label: str) -> np.ndarray:
    """A .npy array -> a batch-1 input tensor: taken as-is when it already is the tensor; float
    values of the tensor's shape for a quantised input are quantised with the input's own scale
    and zero point (as the eval sets' float samples are: the features a reference pipeline wrote);
    else uint8 pixels to preprocess."""
    want = [max(1, d) for d in spec["shape"]]
    fits = list(arr.shape) in (want, want[1:])
    if arr.dtype == np.dtype(spec["dtype"]) and fits:
        return arr.reshape(want)
    if arr.dtype.kind == "f" and fits and (np.dtype(spec["dtype"]).kind == "f" or
                                           (spec.get("quantization") or {}).get("scale")):
        return quantize(arr.astype(np.float32), spec).reshape(want)
    if arr.dtype == np.uint8 and arr.ndim in (2, 3):
        return pixels_to_input(arr[None], spec, pre)
    if arr.dtype.kind == "f":
        raise AgentError(f"{label}: array float{list(arr.shape)} does not fit the model input "
                         f"{spec['dtype']}{want}: shapes {list(arr.shape)} and {want}", kind="input")
    raise AgentError(f"{label}: array {arr.dtype.name}{list(arr.shape)} is neither the model input "
                     f"{spec['dtype']}{want} nor uint8 pixels (H,W[,C])", kind="input")


def file_to_tensor(path: str, spec: dict, pre: Preprocess) -> np.ndarray:
    """A file (image or .npy) -> a batch-1 input tensor."""
    if path.lower().endswith(".npy"):
        return array_to_tensor(load_npy(path), spec, pre, path)
    return pixels_to_input(read_image(path, pre)[None], spec, pre)


def read_image(path: str, pre: Preprocess) -> np.ndarray:
    """An image file -> (H,W,C) uint8 pixels resized to the model's input (Pillow when present)."""
    return read_image_fitted(path, pre)[0]


def read_image_fitted(path: str, pre: Preprocess) -> tuple:
    """An image file -> ((H,W,C) uint8 at the model's input, the Geometry that put it there)."""
    if not os.path.isfile(path):
        raise AgentError(f"{path}: no such file", kind="input")
    return _decode(path, pre, path)


def decode_image_bytes(data: bytes, pre: Preprocess, label: str = "body") -> np.ndarray:
    """Image bytes (e.g. an HTTP body) -> (H,W,C) uint8, like read_image."""
    return _decode(io.BytesIO(data), pre, label)[0]


def decode_image_fitted(data: bytes, pre: Preprocess, label: str = "body") -> tuple:
    """Image bytes -> (pixels at the model's input, Geometry), like read_image_fitted."""
    return _decode(io.BytesIO(data), pre, label)


def _pillow() -> Any:
    """PIL.Image, or None on a board without Pillow (then only binary PGM/PPM can be read)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def _decode(source: Union[str, BinaryIO], pre: Preprocess, label: str) -> tuple:
    """A path or a file-like object -> ((H,W,C) uint8 at the model's size, its Geometry).

    The bytes are untrusted (an HTTP body, a user's folder): whatever goes wrong while decoding
    them is the input's fault, so it always becomes an AgentError (a 4xx in serve), never a 500.
    """
    Image = _pillow()
    try:
        if Image is None:
            arr = _read_pnm(source, label)
            return _resize_nearest(arr, pre), geometry_for(arr.shape[1], arr.shape[0], pre)
        with Image.open(source) as img:  # reads the header only, so the size check costs nothing
            if img.width * img.height > defaults.MAX_IMAGE_PIXELS:
                raise AgentError(f"{label}: image of {img.width}x{img.height} pixels is too large "
                                 f"(limit {defaults.MAX_IMAGE_PIXELS} pixels)", kind="input")
            return fit_image(img, pre), geometry_for(img.width, img.height, pre)
    except AgentError:
        raise
    except Exception:
        raise AgentError(f"{label}: not a readable image (expected PNG, JPEG, BMP, PGM/PPM or .npy)",
                         kind="input") from None


def _read_pnm(source: Union[str, BinaryIO], label: str) -> np.ndarray:
    """Binary PGM (P5) / PPM (P6) with maxval <= 255, for boards without Pillow."""
    if isinstance(source, str):
        with open(source, "rb") as f:
            data = f.read()
    else:
        data = source.read()
    if data[:2] not in (b"P5", b"P6"):
        raise AgentError(f"{label}: reading this image format needs Pillow (pip install Pillow); "
                         ".npy and binary .pgm/.ppm work without it", kind="input")
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            while pos < len(data) and data[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise AgentError(f"{label}: truncated PNM header", kind="input")
        tokens.append(data[start:pos])
    if tokens[0] not in (b"P5", b"P6") or not all(t.isdigit() for t in tokens[1:]):
        raise AgentError(f"{label}: bad PNM header (width, height and maxval must be numbers)", kind="input")
    w, h, maxval = (int(t) for t in tokens[1:])
    channels = 1 if tokens[0] == b"P5" else 3
    if not (w >= 1 and h >= 1 and 1 <= maxval <= 255):
        raise AgentError(f"{label}: only binary 8-bit PGM/PPM of at least 1x1 pixels is supported "
                         "without Pillow", kind="input")
    body = np.frombuffer(data[pos + 1:pos + 1 + w * h * channels], dtype=np.uint8)
    if body.size != w * h * channels:
        raise AgentError(f"{label}: truncated image data", kind="input")
    return body.reshape(h, w, channels)


def _resize_nearest(arr: np.ndarray, pre: Preprocess) -> np.ndarray:
    """Nearest-neighbour fitting without Pillow, by the same Geometry as fit_image."""
    if arr.shape[2] != pre.channels:
        arr = arr.mean(axis=2, keepdims=True).astype(np.uint8) if pre.channels == 1 else \
            np.repeat(arr, pre.channels, axis=2)
    if arr.shape[:2] == (pre.height, pre.width):
        return arr
    if pre.resize == "stretch":     # integer arithmetic: the same pixels on every platform
        ys = (np.arange(pre.height) * arr.shape[0] / pre.height).astype(int)
        xs = (np.arange(pre.width) * arr.shape[1] / pre.width).astype(int)
        return arr[ys][:, xs]
    g = geometry_for(arr.shape[1], arr.shape[0], pre)
    sx, sy = g.to_source(np.arange(pre.width, dtype=np.float64), np.arange(pre.height, dtype=np.float64))
    xs, ys = np.floor(sx).astype(int), np.floor(sy).astype(int)
    out = arr[np.clip(ys, 0, arr.shape[0] - 1)][:, np.clip(xs, 0, arr.shape[1] - 1)]
    outside = (ys < 0) | (ys >= arr.shape[0]), (xs < 0) | (xs >= arr.shape[1])
    out[outside[0]] = LETTERBOX_FILL
    out[:, outside[1]] = LETTERBOX_FILL
    return out
