"""Results stored before result-v2 still load, render and compare (a migration on read).

The stored file is a real `make bench HOST=local` result written by the result-v1 code
(mnist5k, fp32 + int8, 1 thread), kept byte for byte.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from device.contract import results, schema
from tests.conftest import ROOT

V1 = ROOT / "tests" / "host" / "fixtures" / "result-v1-local-mnist5k.json"


def test_v1_file_is_upgraded_on_read_and_the_file_is_untouched():
    before = V1.read_bytes()
    raw = json.loads(before)
    assert raw["schema"] == "edgekit/result-v1"
    with pytest.raises(ValueError):          # as stored it is not today's format ...
        schema.validate(raw)
    doc = results.load(str(V1))              # ... but it reads as one
    assert doc["schema"] == schema.SCHEMA_ID
    assert [r["variant"] for r in doc["results"]] == [raw["deploy"]["variants"][r["model"]["name"]]
                                                      for r in raw["results"]] == ["fp32", "int8"]
    assert "variants" not in doc["deploy"]
    assert V1.read_bytes() == before
    res, run = results.find_run(doc, "int8", 1, True)
    assert run["p50_us"] == raw["results"][1]["runs"][0]["p50_us"]
    assert results.top1(res) == raw["results"][1]["accuracy"]["top1"]


def test_v1_result_renders_in_the_report(tmp_path):
    from host.report import build as report

    board = tmp_path / "results" / "local"
    board.mkdir(parents=True)
    shutil.copyfile(V1, board / V1.name.replace("result-v1-local-", "20261202T043748Z-"))
    md, _ = report.build_report(tmp_path / "results", tmp_path / "reports")
    assert "## local — bundle `mnist5k`" in md
    raw = json.loads(V1.read_text())
    for res in raw["results"]:
        variant = raw["deploy"]["variants"][res["model"]["name"]]
        line = next(l for l in md.splitlines() if l.startswith(f"| {variant} | 1 | on |"))
        assert f"| {res['runs'][0]['p50_us']:.1f} |" in line
    assert "Skipped result files" not in md


def test_v1_result_compares_with_itself_and_with_a_v2_copy(tmp_path):
    from host.compare.results import compare_main

    assert compare_main(str(V1), str(V1)) == 0
    doc = results.load(str(V1))
    doc["results"][1]["accuracy"]["top1"] -= 0.02          # B: int8 lost 2 pp
    (tmp_path / "b.json").write_text(json.dumps(doc))
    assert compare_main(str(V1), str(tmp_path / "b.json")) == 1
