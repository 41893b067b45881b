"""Decoding untrusted image bytes: every failure is an AgentError (a 400 in serve), with or without
Pillow, and the Pillow-less PGM/PPM reader gives the same pixels as Pillow."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from device.contract import inputs
from device.errors import AgentError

PRE = inputs.Preprocess(height=4, width=3, channels=1, pixel_scale=1 / 255, pixel_offset=0.0, source="manifest")
PIXELS = np.arange(12, dtype=np.uint8).reshape(4, 3) * 20

BAD = {
    "letters in the header": b"P5 ab 2 255\n\0\0\0\0",
    "letters in maxval": b"P5 3 4 2x5\n" + bytes(12),
    "negative width": b"P5 -3 4 255\n" + bytes(12),
    "zero size": b"P5 0 0 255\n",
    "truncated header": b"P5 3",
    "comment only": b"P5 # nothing else",
    "truncated data": b"P5 3 4 255\n" + bytes(5),
    "huge size": b"P6 99999999999 99999999999 255\n" + bytes(10),
    "magic glued to a number": b"P53 4 255\n" + bytes(12),
    "not an image": b"definitely not an image",
    "png signature, garbage after": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
    "empty": b"",
    "random": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
}


def _pgm(arr: np.ndarray) -> bytes:
    return b"P5\n# made by the test\n%d %d\n255\n" % (arr.shape[1], arr.shape[0]) + arr.tobytes()


@pytest.fixture(params=["pillow", "no_pillow"])
def pillow(request, monkeypatch):
    """Run a test with Pillow, and again as on a board without it (import of PIL fails)."""
    if request.param == "no_pillow":
        monkeypatch.setitem(sys.modules, "PIL", None)
    else:
        import PIL  # noqa: F401  (Pillow is a requirement of the host and of the tests)
    return request.param


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_bytes_are_an_input_error(pillow, name):
    with pytest.raises(AgentError) as info:
        inputs.decode_image_bytes(BAD[name], PRE, "body")
    assert info.value.kind == "input" and str(info.value).startswith("body: ")


def test_bad_file_is_an_input_error(pillow, tmp_path):
    path = tmp_path / "bad.pgm"
    path.write_bytes(BAD["letters in the header"])
    with pytest.raises(AgentError, match="bad.pgm"):
        inputs.read_image(str(path), PRE)
    with pytest.raises(AgentError, match="no such file"):
        inputs.read_image(str(tmp_path / "missing.png"), PRE)


def test_pgm_decodes_the_same_with_and_without_pillow(pillow, tmp_path):
    got = inputs.decode_image_bytes(_pgm(PIXELS), PRE)
    assert got.shape == (4, 3, 1) and np.array_equal(got[..., 0], PIXELS)
    path = tmp_path / "ok.pgm"
    path.write_bytes(_pgm(PIXELS))
    assert np.array_equal(inputs.read_image(str(path), PRE), got)


def test_png_without_pillow_says_what_to_install(monkeypatch):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(PIXELS).save(buf, format="PNG")
    assert np.array_equal(inputs.decode_image_bytes(buf.getvalue(), PRE)[..., 0], PIXELS)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(AgentError, match="needs Pillow"):
        inputs.decode_image_bytes(buf.getvalue(), PRE)
    for pillow_only in (b"P5 3 4 65535\n" + bytes(24), b"P2 3 4 255\n" + b"0 " * 12):  # 16-bit, ASCII
        with pytest.raises(AgentError, match="(?i)pgm"):
            inputs.decode_image_bytes(pillow_only, PRE)


def test_huge_image_is_refused_before_decoding():
    """A few KB of PNG can hold hundreds of MB of pixels: refused from the header, as an input error."""
    from PIL import Image
    from device import defaults
    buf = io.BytesIO()
    Image.new("L", (defaults.MAX_IMAGE_PIXELS // 1000 + 1, 1000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(AgentError, match="too large"):
        inputs.decode_image_bytes(buf.getvalue(), PRE)
