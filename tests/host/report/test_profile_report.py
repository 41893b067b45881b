"""make report / make compare on real `device profile` results (a tiny model profiled by the agent)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device.contract import schema
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def profile_doc(tmp_path_factory) -> dict:
    """`python -m device profile` of a small INT8 CNN, with the deploy block `make profile` adds."""
    import tensorflow as tf
    from tests.device.models import _convert, _keras_cnn
    out = tmp_path_factory.mktemp("profile_model")
    path = out / "int8.tflite"
    path.write_bytes(_convert(tf, _keras_cnn(tf), "int8", tf.int8))
    proc = subprocess.run([sys.executable, "-m", "device", "profile", str(path), "--num_runs", "20", "--json", "-"],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    thermal = {"temperature_c": None, "throttling": None, "cpufreq": None, "load_avg": None}
    doc["deploy"] = {"host": "testboard", "spec": "local", "profile": "local", "bundle": "tiny",
                     "release": "r1", "info_before": thermal, "info_after": thermal}
    doc["results"][0]["variant"] = "int8"
    schema.validate(doc)
    return doc


def _store(results: Path, name: str, doc: dict) -> Path:
    path = results / "testboard" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_report_shows_top_ops_time_by_type_and_memory_plan(profile_doc, tmp_path):
    from host.report.build import build_report
    results, out = tmp_path / "results", tmp_path / "reports"
    _store(results, "20260101T000000Z-tiny-profile.json", profile_doc)
    md, images = build_report(results, out)
    assert "## Operator profile: testboard — bundle `tiny`" in md
    ops = profile_doc["results"][0]["profile"]["ops"]
    rows = [line for line in md.splitlines() if line.startswith("| ") and "CONV" in line or "SOFTMAX |" in line]
    assert len(rows) >= min(10, len(ops)) - 2
    pngs = [i for i in images if i.startswith("profile_")]
    assert pngs and all((out / p).stat().st_size > 1000 for p in pngs)
    plan = profile_doc["results"][0]["memory_plan"]
    assert f"| {plan['weights_bytes'] / 1024:.1f} |" in md and f"{plan['arena_bytes'] / 1024:.1f}" in md


def test_compare_lists_operators_that_moved(profile_doc, tmp_path):
    a = _store(tmp_path, "a-profile.json", profile_doc)
    slower = json.loads(json.dumps(profile_doc))
    prof = slower["results"][0]["profile"]
    target = max(prof["ops"], key=lambda o: o["latency_us"] or 0)
    target["latency_us"] = round(target["latency_us"] * 3 + prof["whole_p50_us"], 3)   # one op got much slower
    b = _store(tmp_path, "b-profile.json", slower)
    proc = subprocess.run([sys.executable, "-m", "host", "compare", str(a), str(b)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 0, proc.stderr      # the whole model did not move: no gate failure
    moved = proc.stdout.split("operators whose p50 moved", 1)[1].split("\n\n")[0].strip().splitlines()[2:]
    assert len(moved) == 1 and target["op"] in moved[0] and f" {target['index']} " in moved[0]
    same = subprocess.run([sys.executable, "-m", "host", "compare", str(a), str(a)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert "operators: none moved" in same.stdout
