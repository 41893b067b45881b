"""`make torch-mnist`: a source document's PyTorch experiment, redone beside edgekit's way.

The document quantised PyTorch's MNIST CNN dynamically (weights 4,690 KB -> 1,232 KB, top-1 98.97 % ->
98.98 %) and saw no speed-up on the CPU. Here the same network is trained on mnist5k in the torch
venv (host/perf/torch_mnist_train.py), quantised PyTorch's way there, and edgekit's way here
(`make quantize MODEL=torch_mnist.onnx`: LiteRT FP32 / full INT8, ONNX Runtime FP32 / static QDQ INT8);
the agent times each at one thread on this machine. One table, the document's figures beside it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = {"fp32": ("4,690", "98.97"), "dynamic_int8": ("1,232", "98.98")}


def _env(**extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _bench(files: list[Path], runtime: str | None) -> dict:
    args = [sys.executable, "-m", "device", "bench", *map(str, files), "--num_threads", "1", "--num_runs", "300",
            "--warmup_runs", "20", "--json", "-"] + (["--runtime", runtime] if runtime else [])
    doc = json.loads(subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=1800).stdout)
    if doc["errors"]:
        raise RuntimeError(doc["errors"][0])
    return {Path(r["model"]["path"]).stem: r["runs"][0]["p50_us"] for r in doc["results"]}


def run(epochs: int = 3) -> list[dict]:
    from host.convert.interop import torch_file
    from host.data.builtin import load_dataset

    ds = load_dataset("mnist5k")
    with tempfile.TemporaryDirectory(prefix="edgekit-torch-mnist-") as tmp:
        work = Path(tmp)
        np.savez(work / "data.npz", x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        np.savez(work / "test.npz", x_test=ds.x_test, y_test=ds.y_test)
        print(f"torch-mnist: training PyTorch's MNIST CNN on mnist5k ({len(ds.y_train)} images, {epochs} epochs, CPU)")
        subprocess.run([str(torch_file.python()), "-I", str(Path(__file__).with_name("torch_mnist_train.py")),
                        str(work / "data.npz"), str(work), str(epochs)], check=True, timeout=3600)
        pt = json.loads((work / "torch.json").read_text())
        print("torch-mnist: edgekit's way (make quantize MODEL=torch_mnist.onnx)")
        subprocess.run([sys.executable, "-m", "host", "quantize", "--model", str(work / "torch_mnist.onnx"),
                        "--calib", "mnist5k", "--eval", f"npz:{work}/test.npz", "--preprocess", "unit",
                        "--name", "torch_mnist", "--variants", "fp32,int8"], check=True,
                       env=_env(EDGEKIT_ARTIFACTS=str(work)), timeout=3600)
        bundle = work / "torch_mnist"
        manifest = json.loads((bundle / "manifest.json").read_text())
        p50 = _bench([bundle / "fp32.tflite", bundle / "int8.tflite"], None)
        p50.update(_bench([bundle / "ort_fp32.onnx", bundle / "ort_int8.onnx"], "onnxruntime"))
    rows = [dict(pt[k], what=label, published=PUBLISHED[k]) for k, label in
            (("fp32", "PyTorch FP32"), ("dynamic_int8", "PyTorch dynamic INT8"))]
    for v, label in (("ort_fp32", "ONNX Runtime FP32"), ("ort_int8", "ONNX Runtime INT8 (static QDQ)"),
                     ("fp32", "LiteRT FP32"), ("int8", "LiteRT full INT8")):
        e = manifest["variants"][v]
        rows.append({"what": label, "size_kb": round(e["size_bytes"] / 1024, 1), "top1": e["host_top1"],
                     "p50_us": p50[v], "published": None})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| model | size KB | top-1 % | p50 µs (1 thread) | document: size KB, top-1 % |", "|---|---|---|---|---|"]
    for r in rows:
        pub = f"{r['published'][0]}, {r['published'][1]}" if r["published"] else ""
        out.append(f"| {r['what']} | {r['size_kb']:,.1f} | {100 * r['top1']:.2f} | {r['p50_us']:.1f} | {pub} |")
    return "\n".join(out)


def main() -> int:
    rows = run(int(os.environ.get("EPOCHS") or 3))
    text = table(rows)
    print(text)
    from host.config import REPORTS
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "torch_mnist.md").write_text(text + "\n")
    print(f"written: {REPORTS / 'torch_mnist.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
