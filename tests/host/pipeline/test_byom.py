"""Bring your own model (issue 12): a Keras-2-style .h5, a .keras and a SavedModel through full INT8 to
the board (HOST=local), a uint8 .tflite with 1,001 labels through bundle -> bench -> report, and bad
input refused with one line, exit 2 and no half-written bundle.

Everything is built here (tests/host/pipeline/byom_models.py): tiny models, 8x8 digits, a few images.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_host

pytestmark = pytest.mark.timeout(900)

QUICK_PROFILE = """name: quick
description: a few runs, one thread (tests)
arch: [x86_64, aarch64]
threads: [1]
num_runs: 20
warmup_runs: 2
min_secs: 0
cooldown_s: 0
timeout_s: 300
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("byom-data")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    for extra in ([], ["zoo"]):
        subprocess.run([sys.executable, "-m", "tests.host.pipeline.byom_models", str(out), *extra], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> dict:
    """This machine as the board, in its own EDGEKIT_HOME (the runtime installs once per module)."""
    root = tmp_path_factory.mktemp("byom-board")
    (root / "home").mkdir()
    (root / "quick.yaml").write_text(QUICK_PROFILE)
    return {"EDGEKIT_HOME": str(root / "home"), "EDGEKIT_RESULTS": str(root / "results"),
            "EDGEKIT_REPORTS": str(root / "reports"), "profile": str(root / "quick.yaml")}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("byom-artifacts")


def deploy_and_bench(bundle: Path, board: dict, artifacts: Path) -> dict:
    """`python -m deploy push` then `bench` with HOST=local, as `make deploy bench` runs them."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGEKIT_ARTIFACTS=str(artifacts),
               **{k: v for k, v in board.items() if k.startswith("EDGEKIT")})
    for step in ("push", "bench"):
        args = [sys.executable, "-m", "deploy", step, "--bundle", str(bundle), "--host", "local"]
        if step == "bench":
            args += ["--profile", board["profile"]]
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"deploy {step}: {proc.stdout}\n{proc.stderr}"
    [path] = sorted((Path(board["EDGEKIT_RESULTS"]) / "local").glob(f"*-{bundle.name}.json"))[-1:]
    return json.loads(path.read_text())


def check_device_matches_host(doc: dict, manifest: dict) -> None:
    by_variant = {r["variant"]: r for r in doc["results"]}
    assert set(by_variant) == set(manifest["variants"])
    for variant, res in by_variant.items():
        assert res["status"] == "ok", res.get("error")
        acc = res["accuracy"]
        host = manifest["variants"][variant]["host_top1"]
        assert acc["correct"] == round(host * manifest["eval"]["count"]), variant   # the agent rounds top1
        assert acc["agreement_with_host"] == 1.0, variant


MODELS = {   # model file -> how its data is given (every CALIB=/EVAL= form gets used once)
    "legacy.h5": ("folder:{d}/calib", "folder:{d}/eval", ["--labels", "{d}/labels.txt"]),
    # a negative MAX_DROP_PP makes any INT8 result "lose accuracy": the debugger must run and report
    "model.keras": ("npz:{d}/calib.npz", "npz:{d}/test.npz", ["--preprocess", "unit", "--max-drop-pp", "-1"]),
    "saved_model": ("{d}/calib", "csv:{d}/csv/y_labels.csv", ["--int8-fallback", "1"]),
}


@pytest.mark.parametrize("model", list(MODELS))
def test_own_model_to_full_int8_bundle_and_board(model, data, board, artifacts):
    calib, ev, extra = MODELS[model]
    name = model.replace(".", "_")
    args = ["quantize", "--model", str(data / model), "--calib", calib.format(d=data), "--eval", ev.format(d=data),
            "--name", name, "--calib-n", "60", *[a.format(d=data) for a in extra]]
    proc = run_host(*args, artifacts=artifacts)
    assert "int8" in proc.stdout and "top-1" in proc.stdout
    bundle = artifacts / name
    manifest = json.loads((bundle / "manifest.json").read_text())
    i8 = manifest["variants"]["int8"]
    assert i8["input"]["dtype"] == "int8" and i8["output"]["dtype"] == "int8" and i8["float_ops"] == []
    assert {"fp32", "dynamic", "fp16", "int8"} <= set(manifest["variants"])
    origin = manifest["origin"]
    assert origin["format"] == {"legacy.h5": "h5", "model.keras": "keras", "saved_model": "saved_model"}[model]
    assert len(origin["sha256"]) == 64 and origin["path"] == str((data / model).resolve())
    assert manifest["input"]["preprocess"] == "unit" and manifest["input"]["pixel_scale"] == pytest.approx(1 / 255)
    assert manifest["eval"]["count"] == 60 and manifest["class_names"] in ([str(i) for i in range(10)], None)
    assert i8["host_top1"] > 0.5          # the tiny net learned something; the board must see the same
    if model == "legacy.h5":
        assert any("groups" in f for f in origin["fixups"])
    if model == "model.keras":            # the debugger ran on its own: five worst layers, no mixed variant
        dbg = manifest["int8_debug"]
        assert "top-1 drop" in dbg["reason"] and len(dbg["worst_layers"]) == 5 and "mixed" not in manifest["variants"]
        assert dbg["worst_layers"][0]["rmse_over_scale"] >= dbg["worst_layers"][-1]["rmse_over_scale"]
        assert "INT8_FALLBACK=N" in proc.stdout
    if model == "saved_model":            # INT8_FALLBACK=1: the debugger ran and a mixed variant exists
        dbg = manifest["int8_debug"]
        assert len(dbg["worst_layers"]) == 5 and dbg["kept_float"] == [dbg["worst_layers"][0]["layer"]]
        assert manifest["variants"]["mixed"]["float_ops"]
        assert "worst layers" in proc.stdout
    doc = deploy_and_bench(bundle, board, artifacts)
    check_device_matches_host(doc, manifest)


def test_legacy_h5_needs_the_fixup(data):
    """The .h5 really is in Keras 2 form: plain Keras 3 refuses it (so the test above proves the fix-up)."""
    import keras

    with pytest.raises(Exception, match="groups"):
        keras.models.load_model(data / "legacy.h5", compile=False)


def test_uint8_tflite_with_1001_labels_bundle_bench_report(data, board, artifacts):
    zoo = data / "zoo"
    env = dict(os.environ, EDGEKIT_ARTIFACTS=str(artifacts), PYTHONPATH=str(ROOT))
    # -o: the venv is already there; the test is about the `bundle` target, never re-bootstraps it
    proc = subprocess.run(["make", "-s", "-o", ".venv/.requirements.sha256", "bundle",
                           f"MODEL={zoo / 'model_uint8.tflite'}", f"LABELS={zoo / 'labels.txt'}",
                           f"EVAL=folder:{zoo / 'eval'}", "NAME=zoo"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((artifacts / "zoo" / "manifest.json").read_text())
    assert list(manifest["variants"]) == ["uint8"]
    assert len(manifest["class_names"]) == 1001 and manifest["class_names"][2] == "goldfish, Carassius auratus"
    # the file's own input quantisation decides the pixel rule: uint8 q = pixel
    assert manifest["input"]["preprocess"] == "input-quantisation"
    assert manifest["variants"]["uint8"]["host_top1"] == 1.0
    ev = np.load(artifacts / "zoo" / "eval.npz")
    assert ev["x"].shape == (8, 24, 24, 3) and sorted(set(ev["y"].tolist())) == [1, 2]
    doc = deploy_and_bench(artifacts / "zoo", board, artifacts)
    check_device_matches_host(doc, manifest)
    env.update({k: v for k, v in board.items() if k.startswith("EDGEKIT")})
    rep = subprocess.run([sys.executable, "-m", "host", "report"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    text = (Path(board["EDGEKIT_REPORTS"]) / "benchmark_report.md").read_text()
    section = text[text.index("bundle `zoo`"):]
    assert "labels: 1001 (`background`, `tench, Tinca tinca`, `goldfish, Carassius auratus`" in section
    assert "correct `goldfish, Carassius auratus` 4, `tench, Tinca tinca` 4" in section
    assert "preprocessing: input-quantisation" in section


# ---------------------------------------------------------------- bad input

def _bad_cases(data: Path, tmp: Path) -> dict:
    import h5py

    (tmp / "weights.h5").unlink(missing_ok=True)
    with h5py.File(tmp / "weights.h5", "w") as f:
        f.create_dataset("kernel", data=np.zeros(3))
    (tmp / "text.h5").write_text("not hdf5")
    (tmp / "short.txt").write_text("\n".join(str(i) for i in range(9)) + "\n")
    bad_eval = tmp / "eval_unknown"
    (bad_eval / "goldfsh").mkdir(parents=True, exist_ok=True)
    (bad_eval / "goldfsh" / "a.png").write_bytes((data / "zoo" / "eval" / "goldfish" / "goldfish0.png").read_bytes())
    broken = tmp / "eval_broken"
    (broken / "tench").mkdir(parents=True, exist_ok=True)
    (broken / "tench" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    zoo = ["bundle", "--model", str(data / "zoo" / "model_uint8.tflite"), "--labels", str(data / "zoo" / "labels.txt")]
    q = ["quantize", "--calib", f"folder:{data}/calib"]
    return {
        "missing file": ([*q, "--model", str(tmp / "nope.keras")], "model not found"),
        "h5 weights only": ([*q, "--model", str(tmp / "weights.h5")], "without a model config"),
        "h5 not hdf5": ([*q, "--model", str(tmp / "text.h5")], "not an HDF5 file"),
        "labels too short": ([*q, "--model", str(data / "model.keras"), "--labels", str(tmp / "short.txt")],
                             "9 lines, fewer than the model's 10 outputs"),
        "unknown eval class": ([*zoo, "--eval", f"folder:{bad_eval}"], "'goldfish"),
        "undecodable image": ([*zoo, "--eval", f"folder:{broken}"], "not a readable image"),
        "dynamic spatial shape": ([*q, "--model", str(tmp / "dynamic.keras")], "dynamic size"),
        "no calibration": (["quantize", "--model", str(data / "model.keras")], "CALIB="),
        "two inputs": ([*q, "--model", str(tmp / "two.keras")], "are not one image: calibrate it from npz:PATH"),
        "TF op in a layer": ([*q, "--model", str(tmp / "igamma_saved")], "(Igamma, in igamma_layer"),
        "no INT8 kernel": ([*q, "--model", str(tmp / "sine_saved")], "SIN in layer 'sine_layer"),
        "flex tflite": (["bundle", "--model", str(tmp / "flex.tflite")], "(FlexCumprod)"),
        "not an image model": (["bundle", "--model", str(tmp / "vector.tflite"), "--eval", f"folder:{data}/eval"],
                               "not an image"),
    }


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory) -> Path:
    """A dynamic-size model, a two-input model and a non-image .tflite."""
    import keras
    import tensorflow as tf

    tmp = tmp_path_factory.mktemp("odd")
    inp = keras.Input((None, None, 1))
    keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inp))).save(tmp / "dynamic.keras")
    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    keras.Model([a, b], keras.layers.Add()([a, b])).save(tmp / "two.keras")
    v = keras.Input((20,))
    vec = keras.Model(v, keras.layers.Dense(4)(v))
    (tmp / "vector.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(vec).convert())
    for name, fn in (("igamma", lambda t: tf.math.igamma(t * t + 1.0, t * t + 2.0)),   # not a TFLite builtin
                     ("sine", tf.math.sin)):                                            # builtin, no INT8 kernel
        i = keras.Input((8, 8, 1))
        h = keras.layers.Lambda(fn, name=f"{name}_layer")(keras.layers.Conv2D(4, 3)(i))
        m = keras.Model(i, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
        m.export(str(tmp / f"{name}_saved"), format="tf_saved_model", verbose=False)
    flex = tf.function(lambda x: tf.math.cumprod(x, axis=1)).get_concrete_function(tf.TensorSpec([1, 8, 8, 1]))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([flex])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    (tmp / "flex.tflite").write_bytes(conv.convert())
    return tmp


def test_bad_input_one_line_exit_2_no_half_bundle(data, odd_models, artifacts):
    cases = _bad_cases(data, odd_models)
    keep = artifacts / "keep"
    run_host("bundle", "--model", str(data / "zoo" / "model_uint8.tflite"), "--name", "keep", artifacts=artifacts)
    before = {p.name: p.read_bytes() for p in keep.iterdir()}
    for label, (args, needle) in cases.items():
        proc = run_host(*args, "--name", "keep", artifacts=artifacts, check=False)
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 2, f"{label}: rc {proc.returncode}\n{proc.stderr}"
        assert len(lines) == 1 and lines[0].startswith("host: error: "), f"{label}: {proc.stderr}"
        assert needle in lines[0], f"{label}: {lines[0]}"
        assert "Traceback" not in proc.stderr
        assert {p.name: p.read_bytes() for p in keep.iterdir()} == before, f"{label}: bundle changed"
        assert not [p for p in artifacts.iterdir() if p.name.startswith(".")], f"{label}: temp left behind"


def test_non_image_model_bundles_for_bench_without_eval(odd_models, artifacts):
    run_host("bundle", "--model", str(odd_models / "vector.tflite"), "--name", "vector", artifacts=artifacts)
    manifest = json.loads((artifacts / "vector" / "manifest.json").read_text())
    assert manifest["eval"] is None and manifest["accuracy_checked"] is False
    assert list(manifest["variants"]) == ["fp32"] and "input" not in manifest


def test_colour_order_crop_and_per_channel_rule_reach_the_board(data, board, artifacts):
    """BGR + centre crop + ImageNet mean/std: recorded in the manifest, and the board's top-1 matches."""
    zoo = data / "zoo"
    run_host("bundle", "--model", str(zoo / "model_uint8.tflite"), "--labels", str(zoo / "labels.txt"),
             "--eval", f"folder:{zoo / 'eval'}", "--name", "zoo_bgr", "--preprocess", "imagenet",
             "--color-order", "BGR", "--resize", "crop", artifacts=artifacts)
    manifest = json.loads((artifacts / "zoo_bgr" / "manifest.json").read_text())
    inp = manifest["input"]
    assert (inp["preprocess"], inp["color_order"], inp["resize"]) == ("imagenet", "BGR", "crop")
    assert len(inp["pixel_scale"]) == 3 and len(inp["pixel_offset"]) == 3
    # red images read as BGR put the colour in the third channel: no longer 'tench' (class 1)
    assert manifest["variants"]["uint8"]["host_top1"] < 1.0
    check_device_matches_host(deploy_and_bench(artifacts / "zoo_bgr", board, artifacts), manifest)


def test_random_calibration_only_on_request_and_marked_unchecked(data, artifacts):
    proc = run_host("quantize", "--model", str(data / "model.keras"), "--calib", "random", "--calib-n", "10",
                    "--eval", f"npz:{data}/test.npz", "--name", "randcal", "--variants", "fp32,int8",
                    artifacts=artifacts)
    manifest = json.loads((artifacts / "randcal" / "manifest.json").read_text())
    assert manifest["accuracy_checked"] is False and manifest["calibration"] == {"source": "random", "count": 10}
    assert "accuracy: UNCHECKED (CALIB=random)" in proc.stdout
