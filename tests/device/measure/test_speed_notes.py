"""Bench warns, one line each with the likely cause, when an INT8 model is slower than its FP32 twin
measured in the same run, or when XNNPACK took only part of a graph (naming the ops and why)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.measure import speed_notes
from device.runtimes.graph import why_not_delegated

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def slow_pair(tmp_path_factory) -> tuple[Path, Path]:
    """x + relu(x) on a 128x128x8 tensor: FP32 runs both ops on XNNPACK; in INT8 the standalone
    RELU has no XNNPACK kernel, so it runs on the builtin kernels and INT8 is many times slower."""
    import keras
    from keras import layers

    from host.convert.quantize import convert_all

    x = keras.Input((128, 128, 8))
    model = keras.Model(x, layers.Add()([x, layers.ReLU()(x)]))
    calib = np.random.default_rng(0).random((8, 128, 128, 8)).astype(np.float32) * 2 - 1
    folder = tmp_path_factory.mktemp("slow")
    files = convert_all(model, calib, ("fp32", "int8"))
    for v, data in files.items():
        (folder / f"{v}.tflite").write_bytes(data)
    return folder / "fp32.tflite", folder / "int8.tflite"


def _bench(*models: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "device", "bench", *map(str, models), "--num_threads", "1",
                           "--num_runs", "200", "--warmup_runs", "10", "--json", "-"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    return json.loads(proc.stdout)


def test_int8_slower_and_partly_delegated_warn(slow_pair):
    doc = _bench(*slow_pair)
    fp32, int8 = doc["results"]
    assert int8["model"]["quantized"] and not fp32["model"]["quantized"]
    assert int8["model"]["ops_not_delegated"] == {"RELU": 1}
    assert "fused" in int8["model"]["not_delegated_why"]["RELU"]
    slower = [w for w in int8["warnings"] if "is slower than" in w]
    partly = [w for w in int8["warnings"] if "partly delegated" in w]
    assert len(slower) == 1 and len(partly) == 1
    assert "likely cause: unsupported ops left on the builtin kernels (RELU)" in slower[0]
    assert "RELU x1 (" in partly[0] and "1/2 ops" in partly[0]
    assert fp32["warnings"] == []
    assert set(slower + partly) <= set(doc["warnings"])
    assert all("\n" not in w for w in doc["warnings"])


def test_no_warning_without_a_twin_or_when_faster(slow_pair):
    doc = _bench(slow_pair[1])          # INT8 alone: nothing to compare with
    assert not [w for w in doc["warnings"] if "is slower than" in w]
    fp32, int8 = _bench(*slow_pair)["results"]
    int8["runs"][0]["p50_us"] = fp32["runs"][0]["p50_us"] / 2     # the same result, had INT8 been faster
    assert speed_notes.int8_slower([fp32, int8]) == []


def test_the_cause_follows_the_model(slow_pair):
    fp32, int8 = _bench(*slow_pair)["results"]
    int8["model"]["ops_delegated"] = int8["model"]["ops_total"]           # all delegated ...
    cause = speed_notes.int8_slower([fp32, int8])[0][1]
    tiny = fp32["runs"][0]["p50_us"] < speed_notes.TINY_P50_US
    assert ("tiny model dominated by invoke overhead" if tiny else "depthwise convs") in cause
    int8["model"]["inputs"][0]["dtype"] = "uint8"                         # ... per-tensor uint8 first
    assert "per-tensor uint8" in speed_notes.int8_slower([fp32, int8])[0][1]


def test_reasons_name_what_xnnpack_refuses():
    assert "no SHAPE kernel" in why_not_delegated("SHAPE", ["int8"], ["int32"], [True])
    assert "quantised SOFTMAX" in why_not_delegated("SOFTMAX", ["int8"], ["int8"], [True])
    assert "computed at run time" in why_not_delegated("RESHAPE", ["int8", "int32"], ["int8"], [True, True])
    assert "int32" in why_not_delegated("STRIDED_SLICE", ["int32", "int32"], ["int32"], [True, False])
    assert why_not_delegated("MEAN", ["int8", "int32"], ["int8"], [True, False]).startswith("XNNPACK refused")
