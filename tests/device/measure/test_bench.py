"""`bench` on real generated models: every field, delegation, threads and XNNPACK sweeps, inputs."""
from __future__ import annotations

import numpy as np
import pytest

from device.contract import schema

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def sweep(models, agent):
    names = ["fp32", "int8", "uint8", "two_inputs"]
    run = agent("bench", *[models[n] for n in names], "--num_threads", "1,2", "--xnnpack", "both",
                "--num_runs", "7", "--warmup_runs", "2", "--json", "-")
    return names, run


def test_sweep_is_schema_valid_and_complete(sweep):
    names, run = sweep
    assert run.code == 0, run.stderr
    doc = run.doc
    schema.validate(doc)
    assert doc["command"] == "bench" and doc["errors"] == []
    assert doc["runtime"]["name"] == "ai_edge_litert"
    assert doc["device"]["emulated"] is False
    assert [r["model"]["name"] for r in doc["results"]] == [f"{n}.tflite" for n in names]
    for r in doc["results"]:
        assert r["status"] == "ok"
        assert len(r["model"]["sha256"]) == 64 and r["model"]["size_bytes"] > 0
        assert [(x["threads"], x["xnnpack"]) for x in r["runs"]] == [(1, True), (2, True), (1, False), (2, False)]
        for x in r["runs"]:
            assert x["count"] == len(x["samples_us"]) == 7
            assert x["warmup"]["count"] == 2
            assert x["min_us"] <= x["p50_us"] <= x["p90_us"] <= x["p99_us"] <= x["max_us"]
            assert x["p50_us"] == pytest.approx(float(np.percentile(x["samples_us"], 50)), abs=1e-2)
            assert x["init_us"] > 0 and x["first_us"] > 0
        mem = r["memory"]
        assert 0 < mem["rss_imports_mb"] <= mem["rss_loaded_mb"] <= mem["peak_rss_mb"]
        assert mem["model_mb"] >= 0


def test_delegation_is_reported(sweep):
    names, run = sweep
    by_name = {r["model"]["name"]: r for r in run.doc["results"]}
    fp32, int8 = by_name["fp32.tflite"], by_name["int8.tflite"]
    assert fp32["model"]["ops_delegated"] == fp32["model"]["ops_total"] > 0
    assert fp32["model"]["quantized"] is False and int8["model"]["quantized"] is True
    # ai-edge-litert hands the INT8 graph to XNNPACK (all but the softmax)
    assert 0 < int8["model"]["ops_delegated"] <= int8["model"]["ops_total"]
    for r in by_name.values():
        off = [x for x in r["runs"] if not x["xnnpack"]]
        on = [x for x in r["runs"] if x["xnnpack"]]
        assert all(x["ops_delegated"] == 0 and x["delegate_nodes"] == 0 for x in off)
        assert all(x["delegate_nodes"] >= 1 for x in on)


def test_tensor_specs(sweep):
    _, run = sweep
    by_name = {r["model"]["name"]: r["model"] for r in run.doc["results"]}
    assert by_name["int8.tflite"]["inputs"][0]["dtype"] == "int8"
    assert by_name["int8.tflite"]["inputs"][0]["quantization"]["scale"] > 0
    assert by_name["uint8.tflite"]["inputs"][0]["dtype"] == "uint8"
    assert by_name["fp32.tflite"]["inputs"][0]["quantization"] is None
    assert by_name["fp32.tflite"]["inputs"][0]["shape_signature"][0] == -1  # dynamic batch
    assert len(by_name["two_inputs.tflite"]["inputs"]) == 2


def test_input_files_and_dynamic_batch(models, agent, tmp_path):
    batch = tmp_path / "batch3.npy"
    np.save(batch, np.random.default_rng(0).random((3, 12, 12, 1), dtype=np.float32))
    run = agent("bench", models["fp32"], "--input", batch, "--num_runs", "3", "--warmup_runs", "0", "--json", "-")
    assert run.code == 0, run.stderr
    r = run.doc["results"][0]
    assert r["model"]["inputs"][0]["shape"] == [3, 12, 12, 1]
    assert r["runs"][0]["warmup"]["count"] == 0
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.ones((1, 4), np.float32))
    np.save(b, np.ones((1, 3), np.float32))
    run = agent("bench", models["two_inputs"], "--input", f"a={a}", "--input", f"b={b}", "--num_runs", "3",
                "--json", "-")
    assert run.code == 0, run.stderr
    schema.validate(run.doc)


def test_json_to_a_file_and_human_table(models, agent, tmp_path):
    out = tmp_path / "r.json"
    run = agent("bench", models["int8"], "--num_runs", "3", "--json", out)
    assert run.code == 0, run.stderr
    assert "p50 us" in run.stdout and "int8.tflite" in run.stdout
    import json
    schema.validate(json.loads(out.read_text()))


def test_relative_paths(models, agent, tmp_path):
    """Paths are relative to where the user runs the agent, not to the child's working directory."""
    import os
    import shutil
    shutil.copy(models["int8"], tmp_path / "m.tflite")
    np.save(tmp_path / "x.npy", np.zeros((1, 12, 12, 1), np.int8))
    run = agent("bench", "m.tflite", "--input", "x.npy", "--num_runs", "2", "--json", "-", cwd=str(tmp_path))
    assert run.code == 0, run.stderr
    assert run.doc["results"][0]["model"]["path"] == os.path.join(str(tmp_path), "m.tflite")


def test_progress_lines_when_asked_and_whole_warning_lines(models, agent):
    """stderr is a pipe here (as over SSH): progress only with EDGEKIT_PROGRESS=1, one line per
    model x setting; warnings are whole lines; the JSON on stdout is untouched either way."""
    args = ("bench", models["int8"], "--num_threads", "1,2", "--num_runs", "2", "--max_samples", "1",
            "--warmup_runs", "0", "--json", "-")
    quiet = agent(*args, env={"EDGEKIT_PROGRESS": None})
    loud = agent(*args, env={"EDGEKIT_PROGRESS": "1", "CI": "1"})  # the explicit request wins over CI
    for run in (quiet, loud):
        assert run.code == 0, run.stderr
        schema.validate(run.doc)
        assert run.stderr.endswith("\n")
        assert "edgekit-agent: warning: --num_runs 2 capped at --max_samples 1\n" in run.stderr
    assert "threads=" not in quiet.stderr
    progress = [ln for ln in loud.stderr.splitlines() if ln.startswith("[1/1] int8.tflite")]
    assert progress[1:] == ["[1/1] int8.tflite threads=1 xnnpack=on", "[1/1] int8.tflite threads=2 xnnpack=on"]
