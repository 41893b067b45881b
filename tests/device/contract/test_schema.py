"""The stdlib validator against the schema file: accepts good documents, names the bad field."""
from __future__ import annotations

import copy
import json

import pytest

from device.contract import schema
from device.contract.results import finish, model_result, new_doc


def _good() -> dict:
    doc = new_doc("bench", ["bench", "m.tflite"], "2026-01-01T00:00:00Z", runtime_info={"name": "x", "version": "1"})
    run = {"threads": 1, "xnnpack": True, "count": 2, "init_us": 1.0, "first_us": 2.0, "mean_us": 1.5,
           "std_us": 0.5, "min_us": 1.0, "p50_us": 1.5, "p90_us": 1.9, "p95_us": 1.95, "p99_us": 2.0,
           "max_us": 2.0, "samples_us": [1.0, 2.0]}
    doc["results"].append(model_result({"path": "/m.tflite", "name": "m.tflite", "sha256": "ab", "size_bytes": 9,
                                        "ops_total": 3, "ops_delegated": 3}, "m", runs=[run],
                                       memory={"peak_rss_mb": 40.0}))
    return finish(doc)


def test_good_document_passes():
    doc = _good()
    assert doc["errors"] == []
    schema.validate(doc)
    schema.validate(json.loads(json.dumps(doc)))


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("schema"), "missing required field 'schema'"),
    (lambda d: d.update(schema="edgekit/result-v0"), "$.schema"),
    (lambda d: d["results"][0]["runs"][0].update(p50_us="fast"), "$.results[0].runs[0].p50_us: expected number"),
    (lambda d: d["results"][0]["runs"][0].update(p99_us=-1.0), "below the minimum"),
    (lambda d: d["results"][0]["runs"][0].update(xnnpack=1), "runs[0].xnnpack: expected boolean"),
    (lambda d: d["results"][0]["runs"][0]["samples_us"].append(None), "samples_us[2]"),
    (lambda d: d["results"][0]["model"].pop("ops_delegated"), "ops_delegated"),
    (lambda d: d["results"][0].update(accuracy={"top1": 98.5, "count": 10}), "accuracy.top1"),
    (lambda d: d["results"][0].update(status="maybe"), "status"),
    (lambda d: d["results"][0].pop("variant"), "variant"),
    (lambda d: d.update(deploy={"host": "b"}), "deploy"),
    (lambda d: d["device"].pop("emulated"), "emulated"),
    (lambda d: d["results"][0]["memory"].update(peak_rss_mb=float("nan")), "NaN"),
])
def test_bad_documents_name_the_field(mutate, needle):
    doc = copy.deepcopy(_good())
    mutate(doc)
    with pytest.raises(ValueError) as info:
        schema.validate(doc)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_schema_file_is_the_contract():
    s = schema.load_schema()
    assert s["properties"]["schema"]["const"] == schema.SCHEMA_ID == "edgekit/result-v2"
    run_fields = s["$defs"]["run"]["required"]
    for field in ("threads", "xnnpack", "p50_us", "p99_us", "samples_us"):
        assert field in run_fields
