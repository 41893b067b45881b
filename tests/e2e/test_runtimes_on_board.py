"""LiteRT and ONNX Runtime side by side on the emulated aarch64 board (trixie: Python 3.13, NumPy 2):
`make deploy RUNTIMES=litert,onnxruntime` installs ORT's aarch64 wheel beside LiteRT, `make bench`
runs every variant of an ONNX model's bundle with its runtime, and the board's top-1 equals the
host's for both runtimes."""
from __future__ import annotations

import json

import pytest

from tests.conftest import run_host
from tests.e2e.conftest import BUILD_TIMEOUT_S
from tests.e2e.test_deploy_flow import light_profile, run_deploy
from tests.host.pipeline.test_byom import check_device_matches_host
from tests.host.pipeline.test_onnx_in import data, onnx2tf  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S)


def test_both_runtimes_on_the_board_equal_the_host(board, board_home, data, onnx2tf, tmp_path,  # noqa: F811
                                                   monkeypatch):
    monkeypatch.setenv("EDGEKIT_ONNX2TF", str(onnx2tf))
    d = data["dir"]
    run_host("quantize", "--model", str(data["model"]), "--calib", f"folder:{d}/calib", "--eval",
             f"npz:{d}/eval.npz", "--name", "mnist_onnx", "--variants", "fp32,int8", artifacts=tmp_path)
    bundle = tmp_path / "mnist_onnx"
    manifest = json.loads((bundle / "manifest.json").read_text())
    push = run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name,
                      "--runtimes", "litert,onnxruntime")
    assert "ai-edge-litert==2.3.0 + onnxruntime==1.32.0" in push.stdout + push.stderr
    results = tmp_path / "results"
    run_deploy(board_home, "bench", "--bundle", str(bundle), "--host", board.name, "--results", str(results),
               "--runtimes", "litert,onnxruntime", "--profile", str(light_profile(tmp_path)))
    [path] = sorted((results / board.name).glob("*.json"))
    doc = json.loads(path.read_text())
    assert doc["device"]["arch"] == "aarch64" and doc["device"]["emulated"] is True
    assert {r["variant"]: r["runtime"] for r in doc["results"]} == {
        "fp32": "ai_edge_litert", "int8": "ai_edge_litert", "ort_fp32": "onnxruntime", "ort_int8": "onnxruntime"}
    check_device_matches_host(doc, manifest)        # board top-1 = host top-1, LiteRT and ONNX Runtime
    ort = next(r for r in doc["results"] if r["variant"] == "ort_int8")["model"]
    assert ort["quantized"] is True and ort["execution_providers"]
