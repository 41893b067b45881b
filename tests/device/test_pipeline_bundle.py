"""The pipeline's own bundle (artifacts/mnist5k, when `make quantize` has made it): every variant
benches with valid JSON, and on-device top-1 equals the host's exactly."""
from __future__ import annotations

import json
import os

import pytest

from device import schema
from tests.device.conftest import REPO

BUNDLE = os.path.join(REPO, "artifacts", "mnist5k")
pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not os.path.isfile(os.path.join(BUNDLE, "manifest.json")),
                                 reason="no bundle in artifacts/mnist5k (run `make quantize`)")]


def _variants() -> dict:
    with open(os.path.join(BUNDLE, "manifest.json")) as f:
        return json.load(f)["variants"]


def test_bench_every_variant(agent):
    files = [os.path.join(BUNDLE, v["file"]) for v in _variants().values()]
    run = agent("bench", *files, "--num_runs", "20", "--json", "-")
    assert run.code == 0, run.stderr
    schema.validate(run.doc)
    by = {r["model"]["name"]: r["model"] for r in run.doc["results"]}
    if "int8.tflite" in by:  # ai-edge-litert hands the INT8 graph to XNNPACK
        assert by["int8.tflite"]["quantized"] and by["int8.tflite"]["ops_delegated"] > 0


def test_eval_agrees_with_the_host(agent):
    for name, v in _variants().items():
        run = agent("eval", os.path.join(BUNDLE, v["file"]), os.path.join(BUNDLE, "eval.npz"),
                    "--manifest", os.path.join(BUNDLE, "manifest.json"), "--json", "-")
        assert run.code == 0, run.stderr
        acc = run.doc["results"][0]["accuracy"]
        assert acc["host_variant"] == name
        assert acc["agreement_with_host"] == 1.0, (name, acc.get("disagreements"))
        if v.get("host_top1") is not None:
            assert acc["top1"] == pytest.approx(v["host_top1"], abs=1e-9)
