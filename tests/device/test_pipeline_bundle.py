"""The pipeline's own bundle, made in the test by the real host CLI (`tiny_bundle`: digits, 2 epochs,
every variant): every variant benches with valid JSON, and on-device top-1 equals the host's exactly.
It runs in CI on a clean checkout (no artifacts/ needed)."""
from __future__ import annotations

import json
import os

import pytest

from device.contract import schema

pytestmark = [pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def bundle_dir(tiny_bundle) -> str:
    return str(tiny_bundle)


def _variants(bundle: str) -> dict:
    with open(os.path.join(bundle, "manifest.json")) as f:
        return json.load(f)["variants"]


def test_bench_every_variant(agent, bundle_dir):
    BUNDLE = bundle_dir
    variants = _variants(BUNDLE)
    assert set(variants) == {"fp32", "dynamic", "fp16", "int8"}
    files = [os.path.join(BUNDLE, v["file"]) for v in variants.values()]
    run = agent("bench", *files, "--num_runs", "20", "--json", "-")
    assert run.code == 0, run.stderr
    schema.validate(run.doc)
    by = {r["model"]["name"]: r["model"] for r in run.doc["results"]}
    assert len(by) == 4 and all(r["status"] == "ok" for r in run.doc["results"])
    # ai-edge-litert hands the INT8 graph to XNNPACK
    assert by["int8.tflite"]["quantized"] and by["int8.tflite"]["ops_delegated"] > 0
    for r in run.doc["results"]:
        for one in r["runs"]:
            assert one["count"] == len(one["samples_us"]) == 20


def test_eval_agrees_with_the_host(agent, bundle_dir):
    BUNDLE = bundle_dir
    for name, v in _variants(BUNDLE).items():
        run = agent("eval", os.path.join(BUNDLE, v["file"]), os.path.join(BUNDLE, "eval.npz"),
                    "--manifest", os.path.join(BUNDLE, "manifest.json"), "--json", "-")
        assert run.code == 0, run.stderr
        acc = run.doc["results"][0]["accuracy"]
        assert acc["host_variant"] == name
        assert acc["agreement_with_host"] == 1.0, (name, acc.get("disagreements"))
        if v.get("host_top1") is not None:
            assert acc["top1"] == pytest.approx(v["host_top1"], abs=1e-6)   # the agent rounds to 6 decimals
