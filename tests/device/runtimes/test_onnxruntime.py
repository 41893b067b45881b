"""ONNX Runtime as an agent runtime: real .onnx files (built here) through the real ORT wheel."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from device.contract import schema
from device.errors import AgentError
from device.runtimes import registry
from tests import onnx_models as om

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {"conv": om.conv(d / "conv.onnx"), "depthwise": om.depthwise(d / "depthwise.onnx"),
            "linear": om.linear(d / "linear.onnx"), "mnist": om.mnist(d / "mnist.onnx"), "dir": d}


def _run(path, x: np.ndarray, threads: int = 1, xnnpack: bool = True) -> tuple:
    module = registry.load_module(registry.resolve("onnxruntime"))
    interp = registry.make_interpreter(module, str(path), threads, xnnpack)
    registry.allocate(interp)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    interp.set_tensor(ins[0]["index"], x)
    registry.invoke(interp)
    return interp.get_tensor(outs[0]["index"]), interp


def test_conv_depthwise_linear_and_mnist_compute_what_numpy_says(onnx_dir):
    rng = np.random.default_rng(5)
    path, p = onnx_dir["conv"]
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    want = np.maximum(om.ref_conv(x.transpose(0, 3, 1, 2), p["w"], p["b"]), 0).mean(axis=(2, 3))
    got, interp = _run(path, x, threads=2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert interp.get_output_details()[0]["shape"].tolist() == [2, 8]

    path, p = onnx_dir["depthwise"]
    x = rng.random((1, 12, 12, 4), dtype=np.float32)
    np.testing.assert_allclose(_run(path, x)[0], om.ref_conv(x.transpose(0, 3, 1, 2), p["w"], p["b"], group=4),
                               rtol=1e-4, atol=1e-4)
    path, p = onnx_dir["linear"]
    x = rng.random((1, 16), dtype=np.float32)
    np.testing.assert_allclose(_run(path, x)[0], x @ p["w"] + p["b"], rtol=1e-5, atol=1e-5)
    path, p = onnx_dir["mnist"]
    x = rng.random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(_run(path, x)[0], om.ref_mnist(x, p), rtol=1e-4, atol=1e-5)


def test_tensors_look_like_tflite_ones_with_dynamic_dims_as_minus_one(onnx_dir):
    _, interp = _run(onnx_dir["mnist"][0], np.zeros((1, 28, 28, 1), np.float32))
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["shape"].tolist() == [1, 28, 28, 1] and inp["shape_signature"].tolist() == [-1, 28, 28, 1]
    assert inp["dtype"] == np.float32 and inp["index"] == 0 and out["index"] == 1
    facts = interp.delegation()
    assert facts["ops_total"] == sum(facts["op_types"].values()) > 0
    assert facts["quantized"] is False and facts["graph_optimization"] == "all"
    assert "CPUExecutionProvider" in facts["execution_providers"]


def test_bench_gives_the_same_result_schema_with_providers_and_why_nothing_was_delegated(onnx_dir, agent):
    run = agent("bench", onnx_dir["mnist"][0], "--runtime", "onnxruntime", "--num_threads", "1,2",
                "--num_runs", "5", "--warmup_runs", "1", "--min_secs", "0", "--json", "-")
    assert run.code == 0, run.stderr
    doc = run.doc
    schema.validate(doc)
    assert doc["runtime"]["name"] == "onnxruntime" and doc["runtime"]["version"]
    res = doc["results"][0]
    assert [r["threads"] for r in res["runs"]] == [1, 2]
    assert all(r["p50_us"] > 0 and len(r["samples_us"]) == 5 for r in res["runs"])
    model = res["model"]
    assert model["execution_providers"][-1] == "CPUExecutionProvider"
    assert model["ops_total"] > 0 and model["op_types"] and model["graph_optimization"] == "all"
    assert res["memory"]["peak_rss_mb"] > res["memory"]["rss_start_mb"]
    if "XnnpackExecutionProvider" not in model["execution_providers"]:
        assert model["ops_delegated"] == 0
        assert any("no XNNPACK execution provider" in w for w in doc["warnings"])


def test_the_graph_optimisation_level_is_a_setting_and_recorded(onnx_dir, agent):
    run = agent("bench", onnx_dir["conv"][0], "--runtime", "ort", "--num_runs", "2", "--min_secs", "0",
                "--json", "-", env={"EDGEKIT_ORT_OPT": "disable"})
    assert run.code == 0, run.stderr
    model = run.doc["results"][0]["model"]
    assert model["graph_optimization"] == "disable"
    assert model["op_types"] == {"Conv": 1, "Flatten": 1, "GlobalAveragePool": 1, "Relu": 1, "Transpose": 1}


def test_eval_and_infer_run_onnx_classifiers(onnx_dir, agent, tmp_path):
    path, p = onnx_dir["mnist"]
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    want = om.ref_mnist(x[..., None].astype(np.float32) / 255.0, p).argmax(axis=1)
    y = want.copy()
    y[:4] = (y[:4] + 1) % 10                       # four wrong labels: top-1 36/40 if every answer is right
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    run = agent("eval", path, tmp_path / "eval.npz", "--runtime", "onnxruntime", "--json", "-")
    assert run.code == 0, run.stderr
    schema.validate(run.doc)
    acc = run.doc["results"][0]["accuracy"]
    assert acc["count"] == 40 and acc["top1"] == pytest.approx(36 / 40)
    np.save(tmp_path / "one.npy", x[:1, :, :, None].astype(np.float32) / 255.0)
    run = agent("infer", path, tmp_path / "one.npy", "--runtime", "onnxruntime", "--json", "-")
    assert run.code == 0, run.stderr
    assert run.doc["results"][0]["predictions"][0]["top_k"][0]["index"] == int(want[0])


def test_a_model_for_the_other_runtime_is_named_in_one_line(onnx_dir, agent, models):
    run = agent("bench", onnx_dir["linear"][0], "--runtime", "litert", "--json", "-")
    assert run.code == 1
    assert "a .onnx model runs with --runtime onnxruntime, not ai_edge_litert" in run.doc["errors"][0]
    run = agent("bench", models["fp32"], "--runtime", "onnxruntime", "--json", "-")
    assert "a .tflite model runs with --runtime ai_edge_litert, not onnxruntime" in run.doc["errors"][0]
    bad = onnx_dir["dir"] / "bad.onnx"
    bad.write_bytes(b"TFL3 not onnx")
    run = agent("bench", bad, "--runtime", "onnxruntime", "--json", "-")
    assert "not an ONNX model" in run.doc["errors"][0]


def test_without_onnxruntime_the_agent_starts_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)     # what find_spec sees when it is absent
    assert "onnxruntime" not in [r["name"] for r in registry.available()]
    assert registry.resolve().name != "onnxruntime"           # never the default: only when asked for
    with pytest.raises(AgentError, match="runtime onnxruntime is not installed"):
        registry.resolve("onnxruntime")
