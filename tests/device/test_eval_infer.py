"""`eval` and `infer`: the contract's preprocessing gives exactly the host's top-1."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from device.contract import schema

pytestmark = pytest.mark.timeout(300)


def _bundle(models):
    b = models["bundle"]
    return b, os.path.join(b, "eval.npz"), os.path.join(b, "manifest.json")


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_eval_matches_host_exactly(models, agent, variant):
    bundle, eval_set, manifest = _bundle(models)
    run = agent("eval", os.path.join(bundle, f"{variant}.tflite"), eval_set, "--manifest", manifest, "--json", "-")
    assert run.code == 0, run.stderr
    doc = run.doc
    schema.validate(doc)
    acc = doc["results"][0]["accuracy"]
    data = np.load(eval_set)
    host_top1 = float((data[f"pred_{variant}"] == data["y"]).mean())
    assert acc["host_variant"] == variant
    assert acc["agreement_with_host"] == 1.0 and acc["disagreements"] == 0
    assert acc["top1"] == pytest.approx(host_top1)
    if variant == "fp32":
        assert acc["top1"] == pytest.approx(54 / 60)  # labels are the fp32 answers, six changed
    assert acc["count"] == 60 and acc["num_classes"] == 6 and "top5" in acc
    confusion = np.array(acc["confusion"])
    assert confusion.sum() == 60 and np.trace(confusion) == acc["correct"]
    assert acc["preprocess"]["source"] == "manifest"


def test_eval_without_manifest_uses_conventions_and_file_name(models, agent):
    bundle, eval_set, _ = _bundle(models)
    run = agent("eval", os.path.join(bundle, "int8.tflite"), eval_set, "--json", "-")
    assert run.code == 0, run.stderr
    acc = run.doc["results"][0]["accuracy"]
    assert acc["preprocess"]["source"] == "convention"
    assert acc["host_variant"] == "int8"  # pred_int8 found by the file's stem
    # the convention (pixels / 255) is what this bundle's manifest says too: the same answers
    assert acc["agreement_with_host"] == 1.0 and acc["disagreements"] == 0
    assert acc["top1"] == pytest.approx(float((np.load(eval_set)["pred_int8"] == np.load(eval_set)["y"]).mean()))


def test_infer_images_npy_and_folder(models, agent, tmp_path):
    from PIL import Image
    bundle, eval_set, manifest = _bundle(models)
    data = np.load(eval_set)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(data["x"][i, :, :, 0]).save(folder / f"{i}.png")
    np.save(folder / "3.npy", data["x"][3])
    (folder / "junk.png").write_text("not an image")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"L{i}" for i in range(6)) + "\n")
    run = agent("infer", os.path.join(bundle, "int8.tflite"), folder, "--manifest", manifest,
                "--labels", labels, "--top_k", "3", "--json", "-")
    assert run.code == 1  # the junk file
    doc = run.doc
    schema.validate(doc)
    preds = {os.path.basename(p["input"]): p for p in doc["results"][0]["predictions"]}
    assert "error" in preds["junk.png"] and "not a readable image" in preds["junk.png"]["error"]
    for i, name in enumerate(["0.png", "1.png", "2.png", "3.npy"]):
        top = preds[name]["top_k"]
        assert len(top) == 3 and top[0]["label"].startswith("L")
        assert top[0]["index"] == data["pred_int8"][i]
        assert preds[name]["latency_us"] > 0
    assert "Traceback" not in run.stderr


def test_infer_third_party_style_without_manifest(models, agent, tmp_path):
    """uint8 input, no manifest: q = pixel by convention; a ready-made tensor .npy goes in as-is."""
    x = np.random.default_rng(2).integers(0, 256, (12, 12, 1), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", x)
    np.save(tmp_path / "tensor.npy", x[None])
    run = agent("infer", models["uint8"], tmp_path / "pixels.npy", tmp_path / "tensor.npy", "--json", "-")
    assert run.code == 0, run.stderr
    r = run.doc["results"][0]
    a, b = r["predictions"]
    assert a["top_k"] == b["top_k"]
    assert r["preprocess"]["source"] == "convention"


@pytest.mark.parametrize("variant", ["int8", "uint8"])
def test_infer_quantises_a_float_npy_with_the_inputs_own_scale(models, agent, tmp_path, variant):
    """Features a reference pipeline saved as float go into an INT8/UINT8 input the way the eval
    sets' float samples do: q = round(f / scale) + zero point, clipped; a float array of another
    shape is still one line with both shapes."""
    from ai_edge_litert.interpreter import Interpreter
    detail = Interpreter(model_path=models[variant]).get_input_details()[0]
    scale, zp = detail["quantization"]
    f = np.random.default_rng(9).normal(0.5, 0.4, (1, 12, 12, 1)).astype(np.float32)
    info = np.iinfo(detail["dtype"])
    np.save(tmp_path / "q.npy", np.clip(np.round(f / scale) + zp, info.min, info.max).astype(detail["dtype"]))
    np.save(tmp_path / "f.npy", f)
    np.save(tmp_path / "f3.npy", f[0])
    run = agent("infer", models[variant], tmp_path / "q.npy", tmp_path / "f.npy", tmp_path / "f3.npy", "--json", "-")
    assert run.code == 0, run.stderr
    q, a, b = run.doc["results"][0]["predictions"]
    assert q["top_k"] == a["top_k"] == b["top_k"]
    np.save(tmp_path / "small.npy", f[0, :5, :5])
    bad = agent("infer", models[variant], tmp_path / "small.npy", "--json", "-")
    assert bad.code == 1
    (err,) = bad.doc["errors"]
    assert "\n" not in err and "[5, 5, 1] and [1, 12, 12, 1]" in err


def test_infer_invoke_failure_is_a_per_input_error(models, agent, tmp_path):
    """The model fails at invoke(): each input gets a one-line error naming it, not an internal error."""
    np.save(tmp_path / "a.npy", np.zeros((12, 12), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((12, 12), np.uint8))
    run = agent("infer", models["invoke_fails"], tmp_path / "a.npy", tmp_path / "b.npy", "--json", "-")
    assert run.code == 1 and "Traceback" not in run.stderr
    doc = run.doc
    schema.validate(doc)
    r = doc["results"][0]
    assert r["status"] == "ok" and len(r["predictions"]) == 2
    for p, name in zip(r["predictions"], ("a.npy", "b.npy")):
        assert p["error"].startswith(str(tmp_path / name)) and "invoke failed" in p["error"]
    assert len(doc["errors"]) == 2 and not any("internal" in e for e in doc["errors"])


def test_info(agent, tmp_path):
    out = tmp_path / "info.json"
    run = agent("info", "--json", out)
    assert run.code == 0, run.stderr
    doc = json.loads(out.read_text())
    schema.validate(doc)
    d = doc["device"]
    for field in ("hostname", "arch", "cpu_count", "ram_total_mb", "python", "load_avg", "cpufreq",
                  "temperature_c", "throttling", "runtime", "emulated"):
        assert field in d
    assert d["emulated"] is False and d["runtime"]["name"] == "ai_edge_litert"
    assert doc["results"] == []
    assert "runtime" in run.stdout and "emulated" in run.stdout
