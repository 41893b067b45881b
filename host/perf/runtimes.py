"""`make perf`: LiteRT INT8, ONNX Runtime INT8 and ONNX Runtime FP32 p50, each relative to LiteRT FP32.

One ONNX model per size (an MNIST-size classifier like the default model, and a MobileNet-V1-shaped
0.25x128 network), built here with onnx.helper, goes through `make quantize` (onnx2tf, our INT8
converter, ORT's static QDQ INT8), then the agent benches the LiteRT pair and the ORT pair back to
back, REPEATS times: the ratios are taken within a repeat, so the shared machine's drift cancels.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# MobileNet V1 (width 0.25): depthwise-separable blocks as (output channels, stride).
_MOBILENET = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]


def _onnx_model(path: Path, size: int, channels: int, blocks: list, classes: int, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2])], []

    def conv(x: str, c_in: int, c_out: int, k: int, stride: int, group: int = 1) -> str:
        n = len(nodes)
        fan_in = c_in // group * k * k
        w = rng.normal(0, np.sqrt(2 / fan_in), (c_out, c_in // group, k, k)).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"w{n}"), numpy_helper.from_array(np.zeros(c_out, np.float32), f"b{n}")])
        nodes.append(helper.make_node("Conv", [x, f"w{n}", f"b{n}"], [f"c{n}"], strides=[stride] * 2,
                                      pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("Relu", [f"c{n}"], [f"r{n}"]))
        return f"r{n}"

    x, c = conv("t0", channels, 8, 3, 2), 8
    for c_out, stride in blocks:
        x = conv(conv(x, c, c, 3, stride, group=c), c, c_out, 1, 1)
        c = c_out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (c, classes)).astype(np.float32), "fc"))
    nodes.append(helper.make_node("MatMul", ["flat", "fc"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["y"], axis=1))
    graph = helper.make_graph(nodes, "perf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size, size, channels])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


MODELS = {"default_size": (28, 1, [(16, 1)], 10), "mobilenet_v1_0.25_128": (128, 3, _MOBILENET, 1000)}


def _bundle(name: str, spec: tuple, work: Path, env: dict) -> Path:
    model = _onnx_model(work / f"{name}.onnx", *spec)
    subprocess.run([sys.executable, "-m", "host", "quantize", "--model", str(model), "--calib", "random",
                    "--calib-n", "50", "--name", name, "--variants", "fp32,int8"],
                   check=True, capture_output=True, text=True, env=dict(env, EDGEKIT_ARTIFACTS=str(work)), timeout=1800)
    return work / name


def _p50(bundle: Path, files: list[str], runtime: str | None, env: dict) -> dict:
    args = [sys.executable, "-m", "device", "bench", *(str(bundle / f) for f in files), "--num_threads", "1",
            "--num_runs", "300", "--warmup_runs", "30", "--min_secs", "1", "--json", "-"]
    proc = subprocess.run(args + (["--runtime", runtime] if runtime else []), capture_output=True, text=True,
                          env=env, timeout=1800)
    doc = json.loads(proc.stdout)
    if doc["errors"]:
        raise RuntimeError(doc["errors"][0])
    return {Path(r["model"]["path"]).stem: r["runs"][0]["p50_us"] for r in doc["results"]}


def measure(repeats: int, env: dict, spread) -> dict:
    """Per model: each ratio's spread over the repeats, and the four p50s."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-perf-rt-") as tmp:
        for name, spec in MODELS.items():
            bundle = _bundle(name, spec, Path(tmp), env)
            p50 = {k: [] for k in ("fp32", "int8", "ort_fp32", "ort_int8")}
            for _ in range(repeats):
                p50.update({k: p50[k] + [v] for k, v in _p50(bundle, ["fp32.tflite", "int8.tflite"], None, env).items()})
                p50.update({k: p50[k] + [v] for k, v in
                            _p50(bundle, ["ort_fp32.onnx", "ort_int8.onnx"], "onnxruntime", env).items()})
            ratio = {f"{k}_over_litert_fp32": spread([a / b for a, b in zip(p50[k], p50["fp32"])])
                     for k in ("int8", "ort_fp32", "ort_int8")}
            out[name] = dict(ratio, **{f"{k}_p50_us": spread(v) for k, v in p50.items()})
    return out


def render(fig: dict, line) -> list[str]:
    if not any(isinstance(m, dict) and "int8_over_litert_fp32" in m for m in fig.values()):
        return []
    lines = ["ONNX Runtime beside LiteRT: p50 relative to LiteRT FP32, 1 thread (lower = faster)"]
    for name, m in fig.items():
        if not isinstance(m, dict) or "int8_over_litert_fp32" not in m:
            continue
        lines.append(f"  {name} (LiteRT FP32 p50 median {m['fp32_p50_us']['median']:.1f} µs)")
        for key, label in (("int8", "LiteRT INT8"), ("ort_fp32", "ORT FP32"), ("ort_int8", "ORT INT8")):
            lines.append(line(label, m[f"{key}_over_litert_fp32"], "x"))
    return lines

