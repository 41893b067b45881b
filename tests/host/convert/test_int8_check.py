"""The full-INT8 check of conversion (host.convert.quantize.check_full_int8 / graph_summary) on real models.

Fast: the models are the device tests' generated CNNs (built once with TensorFlow and cached), plus
one INT8 model that keeps float input/output (QUANTIZE/DEQUANTIZE at the edges, the classic way a
"full INT8" conversion silently is not).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from host.convert.quantize import ConversionError, check_full_int8, graph_summary

CACHE = Path(tempfile.gettempdir()) / f"edgekit-test-models-{os.getuid()}" / "int8-check-v1"


@pytest.fixture(scope="module")
def blobs() -> dict:
    names = ("fp32", "int8", "uint8", "int8_float_io")
    if not all((CACHE / f"{n}.tflite").exists() for n in names):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        from tests.device.models import _convert, _keras_cnn

        tf.keras.utils.set_random_seed(1)
        cnn = _keras_cnn(tf)
        made = {"fp32": _convert(tf, cnn), "int8": _convert(tf, cnn, "int8", tf.int8),
                "uint8": _convert(tf, cnn, "int8", tf.uint8), "int8_float_io": _convert(tf, cnn, "int8", tf.float32)}
        CACHE.mkdir(parents=True, exist_ok=True)
        for n, b in made.items():
            tmp = CACHE / f"{n}.tmp{os.getpid()}"
            tmp.write_bytes(b)
            os.replace(tmp, CACHE / f"{n}.tflite")
    return {n: (CACHE / f"{n}.tflite").read_bytes() for n in names}


def test_full_int8_passes(blobs):
    check_full_int8(blobs["int8"])


def test_float_graph_is_refused_naming_the_ops(blobs):
    with pytest.raises(ConversionError, match=r"^int8 model still has float ops: (\w+, )*CONV_2D(, \w+)* \(.*CONV_2D at "):
        check_full_int8(blobs["fp32"])


def test_float_io_at_the_edges_is_refused(blobs):
    g = graph_summary(blobs["int8_float_io"])
    assert "QUANTIZE" in g["float_ops"] and "DEQUANTIZE" in g["float_ops"] and "CONV_2D" not in g["float_ops"]
    with pytest.raises(ConversionError, match=re.escape("int8 model still has float ops: " + ", ".join(g["float_ops"]) + " (")):
        check_full_int8(blobs["int8_float_io"])


def test_uint8_io_is_refused_naming_the_tensors(blobs):
    g = graph_summary(blobs["uint8"])
    assert g["float_ops"] == [] or set(g["float_ops"]) <= {"QUANTIZE", "DEQUANTIZE"}
    with pytest.raises(ConversionError) as exc:
        check_full_int8(blobs["uint8"])
    msg = str(exc.value)
    names = [d["name"] for d in g["inputs"] + g["outputs"]]
    if msg.startswith("int8 model input/output are not int8: "):
        assert msg == "int8 model input/output are not int8: " + ", ".join(f"{n}:uint8" for n in names)
    else:  # a converter that inserts QUANTIZE(uint8 -> int8) ops: those take/give no float either
        assert msg.startswith("int8 model still has float ops")


def test_graph_summary_against_the_interpreter(blobs):
    """Every field, compared with the interpreter's own details read here."""
    for name, blob in blobs.items():
        g = graph_summary(blob)
        interp = Interpreter(model_content=blob)
        interp.allocate_tensors()
        for mine, det in zip(g["inputs"] + g["outputs"], interp.get_input_details() + interp.get_output_details()):
            assert mine == {"name": det["name"], "shape": [int(s) for s in det["shape"]],
                            "dtype": np.dtype(det["dtype"]).name, "scale": float(det["quantization"][0]),
                            "zero_point": int(det["quantization"][1])}
            assert type(mine["scale"]) is float and type(mine["zero_point"]) is int
        ops = interp._get_ops_details()
        assert g["ops"] == [op["op_name"] for op in ops]
        tensors = {t["index"]: t for t in interp.get_tensor_details()}
        want = sorted({op["op_name"] for op in ops for i in list(op["inputs"]) + list(op["outputs"])
                       if i >= 0 and np.dtype(tensors[i]["dtype"]) in (np.float32, np.float16)})
        assert g["float_ops"] == want, name
    assert graph_summary(blobs["int8"])["inputs"][0]["scale"] > 0
    assert graph_summary(blobs["fp32"])["inputs"][0]["dtype"] == "float32"


def test_the_message_names_at_most_five_float_op_locations(blobs):
    g = graph_summary(blobs["fp32"])
    assert len(g["float_op_tensors"]) > 5
    with pytest.raises(ConversionError) as exc:
        check_full_int8(blobs["fp32"])
    where = str(exc.value).split(" (", 1)[1][:-1].split("; ")
    assert where == [f"{op} at {t}" for op, t in g["float_op_tensors"][:5]]
