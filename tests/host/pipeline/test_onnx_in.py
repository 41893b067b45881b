"""ONNX in: `make quantize MODEL=model.onnx` -> the same bundle as a Keras model, plus ONNX Runtime's own
variants and the fidelity figures; bad ONNX input refused in one line.

The models are built here with onnx.helper (tests/onnx_models.py). The conversion tests need onnx2tf
in its own venv: the fixture builds it with scripts/venv-tool.sh when it is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests import onnx_models as om
from tests.conftest import ROOT, run_host

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """An MNIST-size NCHW classifier, 28x28 calibration PNGs and an eval npz labelled by the NumPy reference."""
    from PIL import Image

    d = tmp_path_factory.mktemp("onnx-in")
    path, params = om.mnist(d / "mnist.onnx", nchw=True)
    rng = np.random.default_rng(11)
    (d / "calib").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(d / "calib" / f"{i}.png")
    x = rng.integers(0, 256, (60, 28, 28, 1), dtype=np.uint8)
    y = om.ref_mnist(x.astype(np.float32) / 255.0, params).argmax(axis=1)
    y[:3] = (y[:3] + 1) % 10                   # three wrong labels: a faithful model scores 57/60
    np.savez(d / "eval.npz", x_test=x, y_test=y)
    return {"dir": d, "model": path, "params": params}


@pytest.fixture(scope="module")
def onnx2tf() -> Path:
    venv = Path(os.environ.get("EDGEKIT_ONNX2TF") or Path.home() / ".cache" / "edgekit" / "onnx2tf-venv")
    proc = subprocess.run(["scripts/venv-tool.sh"], cwd=ROOT, env=dict(os.environ, VENV_DIR=str(venv)),
                          capture_output=True, text=True, timeout=1500)
    if proc.returncode != 0:
        pytest.skip(f"onnx2tf's venv cannot be built here: {proc.stderr.strip()[-200:]}")
    return venv


def quantize(*args: str, artifacts: Path, venv: Path | None, check: bool = True):
    env_venv = str(venv) if venv else "/nonexistent/onnx2tf-venv"
    old = os.environ.get("EDGEKIT_ONNX2TF")
    os.environ["EDGEKIT_ONNX2TF"] = env_venv
    try:
        return run_host("quantize", *args, artifacts=artifacts, check=check)
    finally:
        if old is None:
            os.environ.pop("EDGEKIT_ONNX2TF")
        else:
            os.environ["EDGEKIT_ONNX2TF"] = old


def test_nchw_onnx_to_full_bundle_with_ort_variants_and_fidelity_checked(data, onnx2tf, tmp_path):
    """(The board's top-1 for both runtimes: tests/e2e/test_runtimes_on_board.py.)"""
    artifacts = tmp_path / "artifacts"
    d = data["dir"]
    proc = quantize("--model", str(data["model"]), "--calib", f"folder:{d}/calib", "--eval", f"npz:{d}/eval.npz",
                    "--name", "mnist_onnx", artifacts=artifacts, venv=onnx2tf)
    assert "fixed to [1, 1, 28, 28] (from batch 1)" in proc.stdout and "fidelity:" in proc.stdout
    bundle = artifacts / "mnist_onnx"
    manifest = json.loads((bundle / "manifest.json").read_text())
    variants = manifest["variants"]
    assert set(variants) == {"fp32", "dynamic", "fp16", "int8", "ort_fp32", "ort_int8"}
    i8 = variants["int8"]
    assert i8["input"]["dtype"] == "int8" and i8["output"]["dtype"] == "int8" and i8["float_ops"] == []
    for v in variants.values():                      # the board feeds every variant NHWC images
        assert v["input"]["shape"] == [1, 28, 28, 1]
    assert variants["ort_int8"]["runtime"] == variants["ort_fp32"]["runtime"] == "onnxruntime"
    assert variants["ort_int8"]["file"] == "ort_int8.onnx" and (bundle / "ort_int8.onnx").is_file()
    assert manifest["input"]["layout"] == "NHWC" and manifest["origin"]["format"] == "onnx"
    fid = manifest["fidelity"]
    assert fid["top1_agreement"] == 1.0 and fid["max_abs_diff"] < 1e-4 and fid["images"] == 40
    for v in ("fp32", "ort_fp32"):                   # both runtimes compute the reference's answers
        assert variants[v]["host_top1"] == pytest.approx(57 / 60)
    assert variants["ort_int8"]["host_top1"] >= 0.85

    # an unfaithful conversion is refused with both figures: the .tflite against another model's ORT output
    from host.convert.interop.onnx_fidelity import add_ort_variants
    from host.convert.source import ModelError
    other, _ = om.mnist(tmp_path / "other.onnx", nchw=True, seed=99)
    calib = np.random.default_rng(0).random((30, 28, 28, 1), dtype=np.float32)
    with pytest.raises(ModelError, match=r"agrees with ONNX Runtime's FP32 on \d+\.\d+ % of 30 calibration images "
                                         r"\(< 99 %\), max abs difference"):
        add_ort_variants({"fp32": (bundle / "fp32.tflite").read_bytes()}, other.read_bytes(), calib, "classify")
    # any other task has no top-1: the largest difference against the output's range decides
    with pytest.raises(ModelError, match=r"differs from ONNX Runtime's FP32 by up to [\d.]+ \([\d.]+ % of the "
                                         r"output's range, > 1 %\) on 30 calibration images"):
        add_ort_variants({"fp32": (bundle / "fp32.tflite").read_bytes()}, other.read_bytes(), calib, "detect")
    files = {"fp32": (bundle / "fp32.tflite").read_bytes()}
    fid = add_ort_variants(files, data["model"].read_bytes(), calib, "detect", logits=True)   # its own ONNX
    assert fid["range_share"] < 1e-3 and "top1_agreement" not in fid and set(files) == {"fp32"}


def _graph(path: Path, nodes: list, inputs: list, opset: int = 17, extra_opsets: tuple = ()) -> Path:
    import onnx
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] +
                              [helper.make_opsetid(d, 1) for d in extra_opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _x(name: str = "x", shape=(1, 1, 8, 8)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


@pytest.mark.parametrize("case, expect", [
    ("opset", "ONNX opset 7 is outside the supported range 11-21; export it again with an opset in that range"),
    ("custom_op", "operator Frobnicate (domain edgekit.test) in node 'mystery' has no ONNX-to-TFLite conversion"),
    ("two_inputs", "2 inputs (a, b); make quantize takes one image input. Convert it to .tflite yourself and "
                   "bundle it as a raw task: make bundle MODEL=m.tflite TASK=raw EVAL=npz:set.npz"),
    ("dynamic", "has dynamic dimensions ['N', 1, 'H', 'W']; give its shape with INPUT= (e.g. INPUT=1x3x224x224)"),
    ("no_converter", "onnx2tf (the ONNX converter) is not installed: `make venv-onnx2tf` installs it"),
])
def test_bad_onnx_is_one_line_exit_2_and_the_old_bundle_stays(case, expect, data, tmp_path):
    artifacts = tmp_path / "artifacts"
    (artifacts / "keep").mkdir(parents=True)
    (artifacts / "keep" / "manifest.json").write_text("{}")
    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = {
        "opset": lambda p: _graph(p, relu, [_x()], opset=7),
        "custom_op": lambda p: _graph(p, [helper.make_node("Frobnicate", ["x"], ["y"], name="mystery",
                                                           domain="edgekit.test")], [_x()], extra_opsets=("edgekit.test",)),
        "two_inputs": lambda p: _graph(p, [helper.make_node("Add", ["a", "b"], ["y"])], [_x("a"), _x("b")]),
        "dynamic": lambda p: _graph(p, relu, [_x(shape=("N", 1, "H", "W"))]),
        "no_converter": lambda p: data["model"],
    }[case](tmp_path / "m.onnx")
    calib = f"folder:{data['dir']}/calib" if case != "dynamic" else "random"
    proc = quantize("--model", str(model), "--calib", calib, "--name", "keep", artifacts=artifacts, venv=None,
                    check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert sorted(p.name for p in artifacts.iterdir() if p.name != "native-stderr.log") == ["keep"]
    assert (artifacts / "keep" / "manifest.json").read_text() == "{}"


def test_dynamic_dims_are_fixed_from_input_or_the_calibration_images(tmp_path, capsys):
    from host.convert.interop import onnx_file
    from host.convert.source import ModelError

    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    path = _graph(tmp_path / "dyn.onnx", relu, [_x(shape=("N", 3, "H", "W"))])
    src = onnx_file.IMPORTER.source(path)
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 20, 30, 3), np.uint8))
    fixed = onnx_file.fixed(src, None, f"npz:{tmp_path}/c.npz", tmp_path)
    assert onnx_file.dims(onnx_file.graph_inputs(onnx_file.load(fixed.path))[0]) == [1, 3, 20, 30]
    assert "['N', 3, 'H', 'W'] fixed to [1, 3, 20, 30] (from the calibration images)" in capsys.readouterr().out
    fixed = onnx_file.fixed(src, "2x3x64x48", None, tmp_path)
    assert onnx_file.dims(onnx_file.graph_inputs(onnx_file.load(fixed.path))[0]) == [2, 3, 64, 48]
    assert fixed.fixups == ["input 'x' ['N', 3, 'H', 'W'] fixed to [2, 3, 64, 48] (from INPUT=)"]
    assert onnx_file.dims(onnx_file.graph_inputs(onnx_file.load(path))[0]) == ["N", 3, "H", "W"]  # source untouched
    with pytest.raises(ModelError, match=r"INPUT=1x4x8x8 does not fit input 'x'"):
        onnx_file.fixed(src, "1x4x8x8", None, tmp_path)
    with pytest.raises(ModelError, match="INPUT=big: give the input shape as numbers joined by x"):
        onnx_file.fixed(src, "big", None, tmp_path)


def test_an_nhwc_rgb_onnx_model_keeps_its_input_through_the_converter_offline(onnx2tf, tmp_path, monkeypatch):
    """onnx2tf assumes NCHW; a model that already takes NHWC images must come out taking the same. For
    RGB inputs onnx2tf also wants sample images from GitHub: the importer supplies its own."""
    from ai_edge_litert.interpreter import Interpreter

    from host.convert.interop import onnx_file
    from host.convert.quantize import convert

    monkeypatch.setenv("EDGEKIT_ONNX2TF", str(onnx2tf))
    path, p = om.conv(tmp_path / "nhwc.onnx")
    src = onnx_file.fixed(onnx_file.IMPORTER.source(path), None, None, tmp_path)
    saved, signature = onnx_file.to_saved_model(src, tmp_path, None)
    interp = Interpreter(model_content=convert(saved, "fp32", None, signature))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["shape"].tolist() == [1, 16, 16, 3]
    x = np.random.default_rng(3).random((1, 16, 16, 3), dtype=np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    want = np.maximum(om.ref_conv(x.transpose(0, 3, 1, 2), p["w"], p["b"]), 0).mean(axis=(2, 3))
    np.testing.assert_allclose(interp.get_tensor(out["index"]), want, atol=1e-4)
