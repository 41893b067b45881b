"""The real CLI end to end on a tiny run: bundle contents, checksums, summary and errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from device.contract.fileio import sha256_file
from host.pipeline.bundle import BundleError, load_manifest
from tests.conftest import run_host


def test_manifest_contents(tiny_bundle):
    m = load_manifest(tiny_bundle)
    assert m["schema"] == "edgekit/bundle-v1" and m["name"] == "digits"
    assert set(m["variants"]) == {"fp32", "dynamic", "fp16", "int8"}
    assert m["input"] == {"height": 8, "width": 8, "channels": 1, "color": "grayscale", "layout": "NHWC",
                          "pixel_scale": 1 / 255, "pixel_offset": 0.0}
    assert m["class_names"] == [str(i) for i in range(10)]
    assert m["dataset"]["split_seed"] == 1234 and m["dataset"]["spec"] == "digits"
    for name, v in m["variants"].items():
        path = tiny_bundle / v["file"]
        assert v["sha256"] == sha256_file(path) and v["size_bytes"] == path.stat().st_size
        assert 0.0 <= v["host_top1"] <= 1.0
    i8 = m["variants"]["int8"]
    assert i8["input"]["dtype"] == "int8" and i8["output"]["dtype"] == "int8" and i8["float_ops"] == []
    assert m["variants"]["fp32"]["agreement_with_fp32"] == 1.0
    assert {"tensorflow-cpu", "keras", "numpy", "python", "edgekit"} <= set(m["versions"])
    assert m["model"]["params"] > 0 and m["model"]["macs"] > 0


def test_eval_set_is_the_test_split(tiny_bundle):
    m = load_manifest(tiny_bundle)
    data = np.load(tiny_bundle / "eval.npz")
    assert data["x"].dtype == np.uint8 and data["x"].shape == (m["eval"]["count"], 8, 8, 1)
    for name, v in m["variants"].items():
        assert np.isclose(np.mean(data[f"pred_{name}"] == data["y"]), v["host_top1"])


def test_history_and_curve(tiny_bundle):
    h = json.loads((tiny_bundle / "history.json").read_text())
    assert h["epochs_run"] == 2 and len(h["history"]["val_accuracy"]) == 2
    assert (tiny_bundle / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "int8.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="int8.tflite does not match its sha256"):
        load_manifest(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json missing"):
        load_manifest(copy)


def test_evaluate_reproduces_summary(tiny_bundle):
    proc = run_host("evaluate", "--name", "digits", artifacts=tiny_bundle.parent)
    assert "int8" in proc.stdout and "targets:" in proc.stdout and "warning" not in proc.stdout


@pytest.mark.parametrize("args,match", [
    (["train", "--dataset", "nope"], "error: unknown dataset 'nope'"),
    (["quantize", "--name", "never-trained"], "error: no trained model in"),
    (["evaluate", "--name", "never-trained"], "error: no bundle at"),
    (["train", "--dataset", "digits", "--name", "a/b"], "error: NAME='a/b': a plain name for artifacts/NAME"),
    (["evaluate", "--name", ".hidden"], "error: NAME='.hidden': a plain name"),
])
def test_cli_errors_are_one_line(tmp_path, args, match):
    proc = run_host(*args, artifacts=tmp_path, check=False)
    assert proc.returncode == 2
    assert match in proc.stderr and "Traceback" not in proc.stderr


def test_manifest_records_each_variants_memory_plan(tiny_bundle):
    """make quantize records the static memory plan per variant; the summary shows it beside the size."""
    from device.profiling.memplan import plan_file
    m = load_manifest(tiny_bundle)
    plans = {name: v["memory_plan"] for name, v in m["variants"].items()}
    for name, v in m["variants"].items():
        full = plan_file(str(tiny_bundle / v["file"]))
        assert plans[name]["arena_bytes"] == full["arena_bytes"] > 0
        assert plans[name]["weights_bytes"] == full["weights_bytes"] > 0
        assert plans[name]["weights_bytes"] < v["size_bytes"]
    assert plans["int8"]["arena_bytes"] * 3 < plans["fp32"]["arena_bytes"]       # int8 vs float32 activations
    assert plans["int8"]["weights_bytes"] * 3 < plans["fp32"]["weights_bytes"]
    assert plans["fp16"]["unpacked_weights_bytes"] > plans["fp16"]["weights_bytes"]  # fp16 -> fp32 at load
    proc = run_host("evaluate", "--name", "digits", artifacts=tiny_bundle.parent)
    assert "weights KB" in proc.stdout and "arena KB" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("int8 "))
    assert f"{plans['int8']['arena_bytes'] / 1024:.1f}" in row.split()
