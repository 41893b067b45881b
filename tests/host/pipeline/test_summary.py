"""The one bundle writer, its staged swap, the bundle-name check and the one summary table, on small
hand-made inputs (no TensorFlow): what every model source's bundle and summary go through."""
from __future__ import annotations

import json

import numpy as np
import pytest

from host.data.builtin import DatasetError
from host.pipeline import bundle as bundle_mod
from host.pipeline.bundle import ManifestParts, bundle_dir, staged, write_bundle
from host.pipeline.evaluate import Scored
from host.pipeline.summary import print_summary, summary_table

TENSOR = {"name": "x", "shape": [1, 2, 2, 1], "dtype": "int8", "scale": 0.5, "zero_point": -3, "shape_signature": [1]}


def _write(folder, parts, with_eval=True):
    files = {"fp32": b"fp32 bytes", "int8": b"int8"}
    preds = {"fp32": np.array([0, 1, 1]), "int8": np.array([0, 1, 0])}
    scored = {v: Scored(preds[v] if with_eval else None, float(np.mean(preds[v] == [0, 1, 1])) if with_eval else None,
                        5.0) for v in files}
    ios = {v: {"inputs": [TENSOR], "outputs": [TENSOR]} for v in files}
    ev = (np.zeros((3, 2, 2, 1), np.uint8), np.array([0, 1, 1])) if with_eval else None
    return write_bundle(folder, "b", files, scored, ios, parts, ev)


def test_manifest_reads_in_the_parts_order(tmp_path):
    parts = ManifestParts({"dataset": {"spec": "d"}, "class_names": ["a", "b"]}, {"origin": {"format": "f"}},
                          {"notes": ["n"]}, {"fp32": {"inputs": 1}}, {"int8": {"host_us": 5.0}})
    m = _write(tmp_path, parts)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == m
    assert list(m) == ["schema", "name", "created_utc", "dataset", "class_names", "variants", "origin", "eval", "notes"]
    assert list(m["variants"]["fp32"]) == ["file", "sha256", "size_bytes", "input", "output", "inputs", "host_top1",
                                           "agreement_with_fp32"]
    assert list(m["variants"]["int8"])[-1] == "host_us"
    assert m["variants"]["int8"]["input"] == {k: TENSOR[k] for k in ("name", "shape", "dtype", "scale", "zero_point")}
    assert m["variants"]["int8"]["agreement_with_fp32"] == pytest.approx(2 / 3)
    ev = np.load(tmp_path / "eval.npz")
    assert ev["pred_int8"].tolist() == [0, 1, 0] and m["eval"]["count"] == 3


def test_without_an_eval_set_accuracy_is_unchecked(tmp_path):
    m = _write(tmp_path, ManifestParts({}, {}), with_eval=False)
    assert m["eval"] is None and m["accuracy_checked"] is False and not (tmp_path / "eval.npz").exists()
    assert m["variants"]["int8"]["agreement_with_fp32"] is None


def test_staged_swaps_in_whole_or_not_at_all(tmp_path):
    final = tmp_path / "b"
    with staged(final) as tmp:
        (tmp / "one").write_text("1")
    assert (final / "one").read_text() == "1"
    with pytest.raises(RuntimeError):
        with staged(final) as tmp:
            (tmp / "two").write_text("2")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"] and [p.name for p in final.iterdir()] == ["one"]


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_bundle_names_are_plain_folder_names(name):
    with pytest.raises(DatasetError, match="a plain name for artifacts/NAME"):
        bundle_dir(name)


def test_bundle_dir_is_under_artifacts(monkeypatch, tmp_path):
    monkeypatch.setattr(bundle_mod, "ARTIFACTS", tmp_path)
    assert bundle_dir("x") == tmp_path / "x"


def _variant(size, top1, agree, **extra):
    return {"size_bytes": size, "host_top1": top1, "agreement_with_fp32": agree, **extra}


def test_the_table_shows_what_the_manifest_records():
    trained = {"variants": {"fp32": _variant(2048, 0.9, 1.0, memory_plan={"weights_bytes": 1024, "arena_bytes": 512}),
                            "int8": _variant(512, 0.85, 0.95, memory_plan=None)}}
    lines = summary_table(trained).splitlines()
    assert lines[0].split() == ["variant", "size", "KB", "weights", "KB", "arena", "KB", "x", "fp32", "top-1", "%",
                                "Δ", "pp", "agree", "%"]
    assert lines[2].split() == ["fp32", "2.0", "1.0", "0.5", "1.000", "90.00", "+0.00", "100.00"]
    assert lines[3].split() == ["int8", "0.5", "-", "-", "0.250", "85.00", "-5.00", "95.00"]
    user = {"variants": {"uint8": _variant(1024, None, None, host_us=7.25)}}
    lines = summary_table(user).splitlines()
    assert lines[0].split()[-2:] == ["host", "µs"] and "weights" not in lines[0]
    assert lines[2].split() == ["uint8", "1.0", "–", "–", "–", "–", "7.2"]
    assert len({len(line) for line in lines}) == 1          # columns line up


def test_summary_says_where_the_model_came_from(capsys):
    user = {"name": "zoo", "origin": {"format": "tflite", "path": "m.tflite"}, "eval": None,
            "accuracy_checked": False, "variants": {"uint8": _variant(1024, None, None, host_us=7.0)}}
    print_summary(user)
    out = capsys.readouterr().out
    assert "zoo: tflite classify model m.tflite, no eval set (accuracy not checked)" in out
    assert "accuracy: UNCHECKED (no EVAL=)" in out and "targets:" not in out
    spec = {"name": "x", "dtype": "int8", "scale": 1 / 255, "zero_point": -128}
    trained = {"name": "digits", "dataset": {"spec": "digits"}, "eval": {"count": 3},
               "model": {"params": 1000, "macs": 2e6, "keras_top1": 0.9},
               "variants": {"fp32": _variant(4000, 0.9, 1.0), "int8": _variant(1000, 0.9, 1.0, ops=5, float_ops=[],
                                                                               input=spec, output=spec)}}
    print_summary(trained)
    out = capsys.readouterr().out
    assert "digits: 1,000 params, 2.00 M MACs, Keras test top-1 90.00 % on 3 test images" in out
    assert "[ok] INT8 size <= 0.30x FP32: 0.250x" in out and "int8 graph: 5 ops, float ops: none" in out
    assert "UNCHECKED" not in out
