"""MLPerf Tiny reference models (../shared/models): int8 and float, different input types."""
from __future__ import annotations

import glob
import os

import pytest

from device.contract import schema
from tests.device.conftest import SHARED_MODELS

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not glob.glob(os.path.join(SHARED_MODELS, "*.tflite")),
                                 reason=f"no third-party models in {SHARED_MODELS}")]


def test_bench_all_shared_models(agent):
    paths = sorted(glob.glob(os.path.join(SHARED_MODELS, "*.tflite")))
    run = agent("bench", *paths, "--num_runs", "5", "--warmup_runs", "1", "--json", "-")
    assert run.code == 0, run.stderr
    doc = run.doc
    schema.validate(doc)
    by_name = {r["model"]["name"]: r["model"] for r in doc["results"]}
    for name, m in by_name.items():
        assert m["ops_total"] > 0
        if m["quantized"]:
            assert 0 < m["ops_delegated"] <= m["ops_total"], name
        else:
            assert m["ops_delegated"] == m["ops_total"], name
    quant = by_name.get("pretrainedResnet_quant.tflite")
    if quant:
        assert quant["quantized"] and quant["ops_delegated"] < quant["ops_total"]  # only partly delegated
        assert quant["inputs"][0]["dtype"] == "int8"
        assert any("pretrainedResnet_quant.tflite" in w and "partly" in w for w in doc["warnings"])
