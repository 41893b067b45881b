"""Bad input: one line on stderr, `errors` in the JSON, a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from device.contract import schema

pytestmark = pytest.mark.timeout(300)


def _assert_clean_failure(run, code: int, needle: str):
    assert run.code == code, (run.code, run.stderr)
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    error_lines = [ln for ln in run.stderr.splitlines() if "error:" in ln]
    assert error_lines and all(needle in ln for ln in error_lines[:1]), run.stderr
    doc = run.doc
    schema.validate(doc)
    assert doc["errors"] and needle in doc["errors"][0]
    return doc


@pytest.fixture(scope="module")
def bad_files(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    blob = open(models["int8"], "rb").read()
    files = {
        "empty": d / "empty.tflite",
        "text": d / "text.tflite",
        "truncated": d / "truncated.tflite",
        "garbage": d / "garbage.tflite",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a model\n")
    files["truncated"].write_bytes(blob[: len(blob) // 2])
    files["garbage"].write_bytes(blob[:8] + bytes(np.random.default_rng(5).integers(0, 256, 400, dtype=np.uint8)))
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize("which, needle", [
    ("missing", "no such file"),
    ("empty", "empty file"),
    ("text", "not a TFLite model"),
    ("truncated", "truncated.tflite"),
    ("garbage", "garbage.tflite"),
])
def test_bad_model_files(bad_files, agent, tmp_path, which, needle):
    path = bad_files.get(which, str(tmp_path / "missing.tflite"))
    doc = _assert_clean_failure(agent("bench", path, "--num_runs", "2", "--json", "-"), 1, needle)
    r = doc["results"][0]
    assert r["status"] == "failed" and r["error"]["message"]


def test_unsupported_op(models, agent):
    doc = _assert_clean_failure(agent("bench", models["custom_op"], "--json", "-"), 1, "Igamma")
    assert doc["results"][0]["error"]["kind"] == "allocate"


def test_one_bad_model_does_not_stop_the_others(models, agent, tmp_path):
    run = agent("bench", tmp_path / "nope.tflite", models["int8"], "--num_runs", "2", "--json", "-")
    assert run.code == 1
    statuses = [r["status"] for r in run.doc["results"]]
    assert statuses == ["failed", "ok"]


def test_wrong_input_shape_and_dtype(models, agent, tmp_path):
    wrong_shape, wrong_dtype = tmp_path / "s.npy", tmp_path / "d.npy"
    np.save(wrong_shape, np.zeros((1, 5, 5, 1), np.int8))
    np.save(wrong_dtype, np.zeros((1, 12, 12, 1), np.float32))
    _assert_clean_failure(agent("bench", models["int8"], "--input", wrong_shape, "--json", "-"), 1,
                          "does not match model input")
    _assert_clean_failure(agent("bench", models["int8"], "--input", wrong_dtype, "--json", "-"), 1,
                          "dtype float32 does not match")
    _assert_clean_failure(agent("bench", models["two_inputs"], "--input", wrong_dtype, "--json", "-"), 1,
                          "but 1 --input file(s)")


def test_eval_set_that_does_not_match(models, agent, tmp_path):
    bad = tmp_path / "bad_eval.npz"
    np.savez(bad, x=np.zeros((4, 28, 28, 1), np.uint8), y=np.zeros(4, np.int64))
    _assert_clean_failure(agent("eval", models["int8"], bad, "--json", "-"), 1, "the model expects")
    np.savez(bad, x=np.zeros((4, 12, 12, 1), np.uint8))
    _assert_clean_failure(agent("eval", models["int8"], bad, "--json", "-"), 1, "no array")
    _assert_clean_failure(agent("eval", models["int8"], tmp_path / "none.npz", "--json", "-"), 1, "no such eval set")


@pytest.mark.parametrize("y, needle", [
    (np.array([0, 1, -1, 3]), "labels must be class indices 0..5"),     # -1 used to land in class 5's row
    (np.array([0, 1, 2, 6]), "labels must be class indices 0..5"),      # the model has 6 outputs
    (np.eye(6, dtype=np.int64)[[0, 1, 2, 3]], "one-hot"),              # used to be an internal ValueError
    (np.array([0.0, 1.0, 2.0, 3.0]), "y must be integer class indices"),
])
def test_eval_labels_are_checked(models, agent, tmp_path, y, needle):
    bad = tmp_path / "labels.npz"
    np.savez(bad, x=np.zeros((4, 12, 12, 1), np.uint8), y=y)
    doc = _assert_clean_failure(agent("eval", models["int8"], bad, "--json", "-"), 1, needle)
    assert doc["results"][0]["error"]["kind"] == "eval_set"


def test_eval_images_must_fit_the_model_after_the_manifest(models, agent, tmp_path):
    """A manifest whose size differs from the model's fixed input: eval_set error, not a resize attempt."""
    bundle = models["bundle"]
    manifest = json.loads(open(os.path.join(bundle, "manifest.json")).read())
    manifest["input"].update(height=8, width=8)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    bad = tmp_path / "small.npz"
    np.savez(bad, x=np.zeros((4, 8, 8, 1), np.uint8), y=np.zeros(4, np.int64))
    doc = _assert_clean_failure(agent("eval", models["int8"], bad, "--manifest", tmp_path / "manifest.json",
                                      "--json", "-"), 1, "the model expects")
    assert doc["results"][0]["error"]["kind"] == "eval_set"


@pytest.mark.parametrize("args, needle", [
    (["bench"], "required"),
    (["bench", "m.tflite", "--num_runs", "0"], "expected an integer >= 1"),
    (["bench", "m.tflite", "--max_samples", "0"], "expected an integer >= 1"),
    (["eval", "m.tflite", "e.npz", "--num_threads", "0"], "expected an integer >= 1"),
    (["infer", "m.tflite", "x.npy", "--top_k", "0"], "expected an integer >= 1"),
    (["bench", "m.tflite", "--warmup_runs", "-1"], "expected an integer >= 0"),
    (["bench", "m.tflite", "--num_threads", "0"], "thread counts"),
    (["bench", "m.tflite", "--num_runs", "lots"], "expected an integer"),
    (["frobnicate"], "invalid choice"),
    (["bench", "m.tflite", "--runtime", "mxnet"], "unknown runtime"),
])
def test_usage_errors_exit_2(agent, args, needle):
    _assert_clean_failure(agent(*args, "--json", "-"), 2, needle)
