"""Conversion of every variant, with the dtype and op checks that make INT8 'full integer'."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow  # noqa: F401  (required: a broken install must fail here, not skip)

from device.contract.inputs import pixels_to_input  # noqa: E402
from host.pipeline.evaluate import builtin_rule, evaluate_variants, predict  # noqa: E402
from host.model.architecture import build_model  # noqa: E402
from host.convert.quantize import ConversionError, check_full_int8, convert_all, graph_summary  # noqa: E402


@pytest.fixture(scope="module")
def variants():
    model = build_model((12, 12, 1), 3, alpha=0.25, blocks=((16, 2), (32, 1)), stem_filters=8)
    calib = np.random.default_rng(0).random((16, 12, 12, 1)).astype(np.float32)
    return convert_all(model, calib)


def test_all_variants_convert(variants):
    assert set(variants) == {"fp32", "dynamic", "fp16", "int8"}
    g = {k: graph_summary(v) for k, v in variants.items()}
    assert g["fp32"]["inputs"][0]["dtype"] == "float32" and g["fp32"]["outputs"][0]["dtype"] == "float32"
    assert g["fp16"]["inputs"][0]["dtype"] == "float32"
    assert "DEQUANTIZE" in g["fp16"]["ops"]  # fp16 weights are dequantised at load
    assert g["dynamic"]["inputs"][0]["dtype"] == "float32"


def test_int8_is_full_integer(variants):
    g = graph_summary(variants["int8"])
    assert g["float_ops"] == []
    assert g["inputs"][0]["dtype"] == "int8" and g["outputs"][0]["dtype"] == "int8"
    assert g["inputs"][0]["scale"] > 0
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(g["ops"])
    check_full_int8(variants["int8"])  # does not raise


def test_full_int8_check_rejects_float_graphs(variants):
    for name in ("fp32", "dynamic", "fp16"):
        with pytest.raises(ConversionError, match="float ops"):
            check_full_int8(variants[name])


def test_int8_without_calibration_is_refused():
    from host.convert.quantize import convert, export_saved_model
    import tempfile
    from pathlib import Path

    model = build_model((12, 12, 1), 3, alpha=0.25, blocks=((16, 2),), stem_filters=8)
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(model, Path(tmp) / "sm")
        with pytest.raises(ConversionError, match="representative dataset"):
            convert(saved, "int8", None)
        with pytest.raises(ConversionError, match="unknown variant"):
            convert(saved, "int4", None)


def test_quantised_input_maps_pixels(variants):
    g = graph_summary(variants["int8"])["inputs"][0]
    px = np.array([0, 1, 128, 255], dtype=np.uint8).reshape(4, 1, 1, 1)
    spec = {"name": "input", "dtype": "int8", "quantization": {"scale": g["scale"], "zero_point": g["zero_point"]}}
    q = pixels_to_input(px, spec, builtin_rule((1, 1, 1))).ravel()
    assert q.dtype == np.int8 and q[0] == -128 and q[-1] == 127  # calibrated on [0, 1]: 0 -> -128, 255 -> 127
    x = np.random.default_rng(1).integers(0, 256, (5, 12, 12, 1), dtype=np.uint8)
    scored = predict(variants["int8"], x, builtin_rule((12, 12, 1)))
    assert scored.predictions.shape == (5,) and scored.host_us > 0


def test_every_variant_scored_on_the_same_images(variants):
    x = np.random.default_rng(2).integers(0, 256, (6, 12, 12, 1), dtype=np.uint8)
    y = np.zeros(6, dtype=np.int64)
    scored = evaluate_variants(variants, x, y)
    assert set(scored) == set(variants)
    for s in scored.values():
        assert s.top1 == float(np.mean(s.predictions == y))
