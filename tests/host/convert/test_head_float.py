"""INT8 with a float head: the graph's last operators stay float and the output is float, the rest
is INT8 (what `make quantize` builds as `mixed` when a raw detector head loses its scores)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(300)


def test_the_last_operators_stay_float_and_the_rest_is_int8(tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from host.convert.debug_int8 import convert_head_float
    from host.convert.importers import identify, importer
    from host.convert.quantize import convert

    keras = tf.keras
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.Dense(6)(keras.layers.Flatten()(x))
    boxes = keras.layers.Rescaling(300.0)(x)                                # pixels
    scores = keras.layers.Activation("sigmoid")(x)                          # 0-1
    keras.Model(inp, keras.layers.Concatenate()([boxes, scores])).save(tmp_path / "det.keras")
    src = identify(str(tmp_path / "det.keras"))
    saved, signature = importer(src.format).to_saved_model(src, tmp_path, None)
    calib = np.random.default_rng(0).random((16, 8, 8, 3), dtype=np.float32)
    fp32 = convert(saved, "fp32", None, signature)
    head = convert_head_float(saved, calib, signature, fp32, 3)
    it = Interpreter(model_content=head)
    assert it.get_output_details()[0]["dtype"] == np.float32
    dtypes = {d["name"]: d["dtype"] for d in it.get_tensor_details()}
    quantised = [n for n, t in dtypes.items() if t == np.int8]
    assert any("conv" in n.lower() for n in quantised)                     # the body is INT8
    # the scores keep their precision: float outputs equal FP32's far closer than one INT8 step of the
    # shared (pixels and 0-1) range would allow (that step is ~2.4 here)
    ref = Interpreter(model_content=fp32)
    ref.allocate_tensors(), it.allocate_tensors()
    x = calib[:1]
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    d = it.get_input_details()[0]
    if d["dtype"] == np.int8:
        scale, zero = d["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    it.set_tensor(d["index"], x)
    it.invoke()
    want = ref.get_tensor(ref.get_output_details()[0]["index"])[0, 6:]
    got = it.get_tensor(it.get_output_details()[0]["index"])[0, 6:]
    assert np.max(np.abs(got - want)) < 0.1
