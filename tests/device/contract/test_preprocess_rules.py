"""The one pixel rule (device/contract/inputs.py) the host and the board share: presets, per-channel values,
colour order, centre crop, and old manifests read as before."""
import numpy as np
import pytest
from PIL import Image

from device.contract import inputs

SPEC_F32 = {"name": "x", "dtype": "float32", "shape": [1, 4, 6, 3], "quantization": None}


def pre(**kw):
    base = dict(height=4, width=6, channels=3, pixel_scale=1 / 255, pixel_offset=0.0, source="manifest")
    base.update(kw)
    return inputs.Preprocess(**base)


def test_imagenet_preset_is_per_channel_mean_std():
    px = np.random.default_rng(0).integers(0, 256, (1, 4, 6, 3), dtype=np.uint8)
    scale, offset = inputs.PRESETS["imagenet"]
    f = inputs.pixels_to_float(px, pre(pixel_scale=scale, pixel_offset=offset))
    want = (px / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(f, want, atol=1e-5)


def test_signed_and_raw_presets():
    px = np.array([0, 255], dtype=np.uint8).reshape(1, 1, 2, 1)
    p = dict(height=1, width=2, channels=1)
    assert inputs.pixels_to_float(px, pre(**p, pixel_scale=2 / 255, pixel_offset=-1.0)).ravel().tolist() == \
        pytest.approx([-1.0, 1.0])
    raw_scale, raw_offset = inputs.PRESETS["raw"]
    assert inputs.pixels_to_float(px, pre(**p, pixel_scale=raw_scale, pixel_offset=raw_offset)).ravel().tolist() == [0, 255]


def test_bgr_swaps_channels_before_the_per_channel_rule():
    px = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    px[..., 0] = 200                                  # red in RGB
    f = inputs.pixels_to_float(px, pre(color_order="BGR", pixel_scale=[1.0, 1.0, 0.5], pixel_offset=0.0))
    assert f[0, 0, 0].tolist() == [0.0, 0.0, 100.0]   # red moved last, then scaled by the third value


def test_crop_takes_the_centre_at_the_model_aspect():
    arr = np.zeros((10, 30, 3), dtype=np.uint8)
    arr[:, 10:20] = 255                                # a white centre band, black sides
    cropped = inputs.fit_image(Image.fromarray(arr), pre(height=5, width=5, resize="crop"))
    stretched = inputs.fit_image(Image.fromarray(arr), pre(height=5, width=5, resize="stretch"))
    assert cropped.shape == (5, 5, 3) and cropped.min() > 200          # only the centre square is kept
    assert stretched[:, 0].max() == 0 and stretched[:, 2].min() > 200  # the whole width squeezed in


def test_gray_image_to_rgb_model_and_back():
    gray = Image.fromarray(np.full((8, 8), 77, dtype=np.uint8))
    assert inputs.fit_image(gray, pre(height=8, width=8)).shape == (8, 8, 3)
    rgb = Image.fromarray(np.full((8, 8, 3), 77, dtype=np.uint8))
    assert inputs.fit_image(rgb, pre(height=8, width=8, channels=1)).shape == (8, 8, 1)


def test_old_manifest_without_new_keys_reads_as_before():
    manifest = {"input": {"height": 4, "width": 6, "channels": 3, "pixel_scale": 1 / 255, "pixel_offset": 0.0}}
    p = inputs.preprocess_for(SPEC_F32, manifest)
    assert (p.color_order, p.resize, p.pixel_scale) == ("RGB", "stretch", 1 / 255)
    manifest["input"].update(pixel_scale=[1.0, 2.0, 3.0], pixel_offset=[0.0, 0.0, -1.0], color_order="bgr",
                             resize="crop")
    p = inputs.preprocess_for(SPEC_F32, manifest)
    assert (p.color_order, p.resize, p.pixel_scale) == ("BGR", "crop", [1.0, 2.0, 3.0])


def test_wrong_number_of_channel_values_is_refused():
    px = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    with pytest.raises(inputs.AgentError, match="2 values but the model has 3 channels"):
        inputs.pixels_to_float(px, pre(pixel_scale=[1.0, 2.0]))
