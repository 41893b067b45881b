"""`make bundle` for models that are not classifiers: the task recognised (or TASK=) and recorded in
the manifest, labels checked the task's way, and EVAL=coco:/masks: scored per variant with the
task's metric by the board's own decoding code run on the host."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.device.conftest import REPO, agent_env
from tests.host.metrics.test_results import _set as coco_set


@pytest.fixture(scope="module")
def tmodels():
    from tests.cached_models import task_models
    return task_models()


def _host(tmp_path, *args):
    env = agent_env({"EDGEKIT_ARTIFACTS": str(tmp_path / "artifacts")})
    return subprocess.run([sys.executable, "-m", "host", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)


def _manifest(tmp_path, name):
    return json.loads((tmp_path / "artifacts" / name / "manifest.json").read_text())


def test_a_detector_bundle_records_its_task_and_its_map(tmodels, tmp_path):
    spec = coco_set(tmp_path)
    proc = _host(tmp_path, "bundle", "--model", tmodels["yolo"], "--labels", tmp_path / "labels.txt",
                 "--eval", spec, "--name", "det")
    assert proc.returncode == 0, proc.stderr
    m = _manifest(tmp_path, "det")
    assert m["task"] == "detect" and m["eval_set"] == spec and "accuracy_checked" not in m
    (entry,) = m["variants"].values()
    assert entry["host_metric"]["map"] == pytest.approx(2 / 3)          # cat 1, dog 1, bird 0
    assert "detect on " in proc.stdout and "mAP 0.6667" in proc.stdout
    again = _host(tmp_path, "evaluate", "--name", "det")          # make evaluate: the same figure, no warning
    assert again.returncode == 0 and "mAP 0.6667" in again.stdout and "warning" not in again.stdout, again.stderr
    coco = json.loads((tmp_path / "instances.json").read_text())  # the set changed: the bird is found now
    coco["annotations"][2]["bbox"] = [92, 66, 16, 18]
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    moved = _host(tmp_path, "evaluate", "--name", "det")
    assert moved.returncode == 0 and "figure moved: was mAP 0.6667" in moved.stdout


def _mask_set(tmp_path, wrong_cols: int = 0) -> str:
    """One image half red, half blue; its mask says class 2 on the right half (and on `wrong_cols`
    columns left of it, which the segmenter gets wrong)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    arr = np.zeros((64, 96, 3), dtype=np.uint8)
    arr[:, :48] = (255, 0, 0)
    arr[:, 48:] = (0, 0, 255)
    Image.fromarray(arr).save(tmp_path / "images" / "a.png")
    mask = np.zeros((64, 96), dtype=np.uint8)
    mask[:, 48 - wrong_cols:] = 2
    mask[:4, :4] = 255                                  # ignored pixels
    Image.fromarray(mask, mode="L").save(tmp_path / "masks" / "a.png")
    return f"masks:{tmp_path / 'images'}:{tmp_path / 'masks'}"


def test_a_segmenter_bundle_scores_miou_on_masks(tmodels, tmp_path):
    proc = _host(tmp_path, "bundle", "--model", tmodels["segment"], "--name", "seg", "--eval", _mask_set(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (entry,) = _manifest(tmp_path, "seg")["variants"].values()
    assert entry["host_metric"]["miou"] == pytest.approx(1.0) and entry["host_metric"]["pixel_accuracy"] == 1.0


def test_a_forced_task_the_outputs_do_not_fit_is_exit_2_and_no_bundle(tmodels, tmp_path):
    proc = _host(tmp_path, "bundle", "--model", tmodels["yolo"], "--task", "keypoints", "--name", "x")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("--task keypoints: this model's outputs (Identity [1, 7, 1200]) are not "
                                        "a keypoints layout")
    assert not (tmp_path / "artifacts" / "x").exists()


def test_a_classifier_eval_set_for_a_detector_is_refused(tmodels, tmp_path):
    (tmp_path / "imgs").mkdir()
    proc = _host(tmp_path, "bundle", "--model", tmodels["yolo"], "--eval", f"folder:{tmp_path / 'imgs'}",
                 "--name", "x")
    assert proc.returncode == 2 and "a detect model is evaluated on coco:JSON:IMAGES" in proc.stderr


def _runner(tmp_path):
    """`run(module, *args, code=0)`: python -m module in a private artifacts/home/results/reports,
    with this machine as the board (HOST=local)."""
    env = agent_env({"EDGEKIT_ARTIFACTS": str(tmp_path / "artifacts"), "EDGEKIT_HOME": str(tmp_path / "home"),
                     "EDGEKIT_RESULTS": str(tmp_path / "results"), "EDGEKIT_REPORTS": str(tmp_path / "reports")})

    def run(*args, code=0):
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=600)
        assert proc.returncode == code, proc.stdout[-1500:] + proc.stderr[-1500:]
        return proc
    return run


def test_make_bench_of_a_detector_bundle_gives_the_boards_map_beside_the_hosts(tmodels, tmp_path):
    """bundle (EVAL=coco:) -> push + bench on HOST=local -> host score --bundle: the board's mAP
    computed by pycocotools from the board's own predictions, next to the host's."""
    spec = coco_set(tmp_path)
    run = _runner(tmp_path)
    run("host", "bundle", "--model", tmodels["yolo"], "--labels", tmp_path / "labels.txt", "--eval", spec,
        "--name", "det")
    bundle = tmp_path / "artifacts" / "det"
    assert _manifest(tmp_path, "det")["eval"]["kind"] == "images"
    run("deploy", "push", "--bundle", bundle, "--host", "local")
    run("deploy", "bench", "--bundle", bundle, "--host", "local")
    (result,) = (tmp_path / "results" / "local").glob("*.json")
    entry = [r for r in json.loads(result.read_text())["results"] if r.get("predictions")][0]
    assert entry["task"] == "detect" and len(entry["predictions"]) == 1
    run("host", "score", "--bundle", bundle, result, "--json", tmp_path / "s.json")
    scores = json.loads((tmp_path / "s.json").read_text())["variants"]
    (v,) = scores.values()
    assert v["board"]["map"] == pytest.approx(2 / 3) and v["host"]["map"] == pytest.approx(2 / 3)
    assert v["agreement"]["matched"] == 1.0 and v["agreement"]["max_score_diff"] == 0.0
    newest = run("host", "score", "--bundle", bundle, "--newest")     # what `make bench` runs after the bench
    assert "local fp32 detect: board map 0.6667" in newest.stdout and "local fp32 detect: host  map 0.6667" in newest.stdout
    # make compare gates on the board's mAP: a result that lost the dog drops it from 2/3 to 1/3
    worse = json.loads(result.read_text())
    entry = [r for r in worse["results"] if r.get("predictions")][0]
    entry["predictions"][0]["detections"] = [d for d in entry["predictions"][0]["detections"] if d["label"] != "dog"]
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    cmp = run("host", "compare", result, tmp_path / "worse.json", code=1)
    line = [x for x in cmp.stdout.splitlines() if x.startswith("fp32 (detect)")][0]
    assert line.split()[2:6] == ["map", "0.6667", "0.3333", "-33.33pp"] and line.endswith("REGRESSION")
    same = run("host", "compare", result, result)
    assert "fp32 (detect)" in same.stdout
    run("host", "report")                      # the same figures in the report's board section
    report = (tmp_path / "reports" / "benchmark_report.md").read_text()
    row = [line for line in report.splitlines() if line.startswith("| fp32 | 0.6667 |")]
    assert "**detect** on `coco:" in report and row and row[0].endswith("| 1.0000 | 1.0000 |")


def test_make_bench_of_a_segmenter_gives_the_boards_miou_beside_the_hosts(tmodels, tmp_path):
    """masks: set -> bundle -> push + bench on HOST=local: the board sends its class maps back as
    runs, the host scores mIoU on them and on its own maps; the table shows post-processing."""
    spec = _mask_set(tmp_path, wrong_cols=8)
    run = _runner(tmp_path)
    (tmp_path / "seg_labels.txt").write_text("red\ngreen\nblue\n")
    run("host", "bundle", "--model", tmodels["segment"], "--eval", spec, "--name", "seg",
        "--labels", tmp_path / "seg_labels.txt")
    bundle = tmp_path / "artifacts" / "seg"
    (entry,) = _manifest(tmp_path, "seg")["variants"].values()
    host_miou = entry["host_metric"]["miou"]
    assert 0 < host_miou < 1                       # the 8 wrong columns cost IoU
    run("deploy", "push", "--bundle", bundle, "--host", "local")
    bench = run("deploy", "bench", "--bundle", bundle, "--host", "local")
    assert "post p50 us" in bench.stdout
    (result,) = (tmp_path / "results" / "local").glob("*.json")
    run("host", "score", "--bundle", bundle, result, "--json", tmp_path / "s.json")
    (v,) = json.loads((tmp_path / "s.json").read_text())["variants"].values()
    assert v["board"]["miou"] == pytest.approx(host_miou) and v["host"]["miou"] == pytest.approx(host_miou)
    assert v["agreement"]["pixels_equal"] == 1.0
    assert list(v["board"]["per_class"]) == ["red", "green", "blue"] and v["board"]["per_class"]["green"] is None
    # compare gates on mIoU: a board map with everything called class 0 is a regression in points
    worse = json.loads(result.read_text())
    pred = [r for r in worse["results"] if r.get("predictions")][0]["predictions"][0]
    pred["mask_runs"] = {"size": pred["mask_runs"]["size"], "values": [0],
                         "counts": [pred["mask_runs"]["size"][0] * pred["mask_runs"]["size"][1]]}
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    cmp = run("host", "compare", result, tmp_path / "worse.json", code=1)
    line = [x for x in cmp.stdout.splitlines() if x.startswith("fp32 (segment)")][0]
    assert line.split()[2] == "miou" and line.endswith("REGRESSION")
    run("host", "report")
    report = (tmp_path / "reports" / "benchmark_report.md").read_text()
    assert "**segment** on `masks:" in report and f"| fp32 | {host_miou:.4f} | {host_miou:.4f} |" in report
    assert "- fp32 board IoU per class: red 0." in report and ", green –, blue 0." in report
    header = [x for x in report.splitlines() if x.startswith("| variant | threads |")][0].split(" | ")
    row = [x for x in report.splitlines() if x.startswith("| fp32 | 1 | on |")][0].split(" | ")
    post = float(row[header.index("post p50 µs")])            # the bench table's "post p50 us", here too
    assert post > 0


def test_quantize_a_keras_segmenter_calibrated_on_unlabelled_images(tmp_path):
    """make quantize MODEL=seg.keras CALIB=folder:images/ EVAL=masks:...: every variant, INT8
    included, scored by mIoU (not top-1), each compared with FP32's masks."""
    import tensorflow as tf
    keras = tf.keras
    inp = keras.Input((32, 48, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False)
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.AveragePooling2D(2)(conv(inp))))
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3) * 8])
    model.save(tmp_path / "seg.keras")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        arr = np.zeros((64, 96, 3), dtype=np.uint8)
        cls = rng.permutation(3)[:2]
        arr[:, :48, cls[0]] = 255
        arr[:, 48:, cls[1]] = 255
        Image.fromarray(arr).save(tmp_path / "images" / f"{i}.png")
        mask = np.zeros((64, 96), dtype=np.uint8)
        mask[:, :48], mask[:, 48:] = cls
        Image.fromarray(mask, mode="L").save(tmp_path / "masks" / f"{i}.png")
    proc = _host(tmp_path, "quantize", "--model", tmp_path / "seg.keras", "--name", "seg", "--calib",
                 f"folder:{tmp_path / 'images'}", "--eval", f"masks:{tmp_path / 'images'}:{tmp_path / 'masks'}")
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    m = _manifest(tmp_path, "seg")
    assert m["task"] == "segment" and set(m["variants"]) == {"fp32", "dynamic", "fp16", "int8"}
    for variant, entry in m["variants"].items():
        assert entry["host_metric"]["miou"] == pytest.approx(1.0), variant
    assert m["variants"]["int8"]["host_metric"]["agreement_with_fp32"]["pixels_equal"] == 1.0
    assert "int8     segment on masks:" in proc.stdout and "mIoU 1.0000" in proc.stdout
    line = [x for x in proc.stdout.splitlines() if x.startswith("int8     segment on masks:")][0]
    assert line.endswith("; vs fp32: 100.00 % of pixels as fp32")        # FP32 vs INT8 by the task's metric


def test_a_raw_model_bundle_ships_its_npz_and_the_board_compares_outputs(tmodels, tmp_path):
    from tests.device.conftest import run_agent as agent
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 16)).astype(np.float32)
    y0 = (x[:, :6] * 2).reshape(5, 2, 3)
    y0[2, 0, 0] += 0.5
    np.savez(tmp_path / "set.npz", x=x, y0=y0)
    proc = _host(tmp_path, "bundle", "--model", tmodels["raw"], "--eval", f"npz:{tmp_path / 'set.npz'}", "--name", "r")
    assert proc.returncode == 0, proc.stderr
    m = _manifest(tmp_path, "r")
    assert m["task"] == "raw" and m["eval"]["kind"] == "tensors" and m["eval"]["count"] == 5
    (entry,) = m["variants"].values()
    assert entry["host_metric"]["outputs"][0]["max_abs_error"] == pytest.approx(0.5, abs=1e-5)
    bundle = tmp_path / "artifacts" / "r"
    run = agent("bench", bundle / entry["file"], "--eval", bundle / "eval.npz", "--manifest", bundle / "manifest.json",
                "--num_runs", "5", "--warmup_runs", "1", "--json", "-")
    assert run.code == 0, run.stderr
    res = run.doc["results"][0]
    assert res["task"] == "raw" and res["tensors"] == {"count": 5, "outputs": entry["host_metric"]["outputs"]}
    proc = _host(tmp_path, "bundle", "--model", tmodels["raw"], "--eval", f"folder:{tmp_path}", "--name", "r2")
    assert proc.returncode == 2 and "a raw (any-tensor) model is evaluated on npz:PATH" in proc.stderr


def test_make_bench_of_a_raw_bundle_gives_the_boards_figures_beside_the_hosts(tmodels, tmp_path):
    """bundle (EVAL=npz: with labels) -> push + bench on HOST=local: make bench's own output, make
    score BUNDLE= (no result: the newest), the report and make compare all carry the board's
    per-output error, cosine and top-1 beside the host's recorded at bundle time."""
    run = _runner(tmp_path)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 16)).astype(np.float32)
    y0 = (x[:, :6] * 2).reshape(5, 2, 3)
    labels = np.argmax(x[:, :6], axis=1)
    labels[0] = (labels[0] + 1) % 6                         # one wrong label: top-1 0.8 on board and host
    np.savez(tmp_path / "set.npz", x=x, y0=y0, labels=labels)
    run("host", "bundle", "--model", tmodels["raw"], "--eval", f"npz:{tmp_path / 'set.npz'}", "--name", "kws")
    bundle = tmp_path / "artifacts" / "kws"
    run("deploy", "push", "--bundle", bundle, "--host", "local")
    run("deploy", "bench", "--bundle", bundle, "--host", "local")
    newest = run("host", "score", "--bundle", bundle, "--newest")        # what `make bench` prints after the table
    assert "local fp32 raw: board top1 0.8000, Identity max_abs_error 0, Identity mean_cosine 1.0000" in newest.stdout
    assert "local fp32 raw: host  top1 0.8000, Identity max_abs_error 0" in newest.stdout
    plain = run("host", "score", "--bundle", bundle)                      # make score BUNDLE=artifacts/kws
    assert plain.stdout == newest.stdout
    (result,) = (tmp_path / "results" / "local").glob("*.json")
    run("host", "score", "--bundle", bundle, result, "--json", tmp_path / "s.json")
    (v,) = json.loads((tmp_path / "s.json").read_text())["variants"].values()
    assert v["board"] == v["host"] and v["board"]["top1"] == pytest.approx(0.8)
    run("host", "report")
    report = (tmp_path / "reports" / "benchmark_report.md").read_text()
    assert "**raw** on `npz:" in report and "| fp32 | top1 | 0.8000 | 0.8000 |" in report
    row = [line for line in report.splitlines() if line.startswith("| fp32 | 1 | on |")][0]
    assert row.split(" | ")[5:7] == ["80.00", "80.00"]               # host top-1 % beside device top-1 %
    worse = json.loads(result.read_text())                              # compare gates on top-1 in points
    (entry,) = [r for r in worse["results"] if r.get("tensors")]
    entry["accuracy"].update(top1=0.6, correct=3)
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    cmp = run("host", "compare", result, tmp_path / "worse.json", code=1)
    line = [x for x in cmp.stdout.splitlines() if x.split()[:1] == ["fp32"] and " top1 " in x][0]
    assert "-20.00pp" in line and line.endswith("REGRESSION")
    other = tmp_path / "artifacts" / "plain"
    run("host", "bundle", "--model", tmodels["raw"], "--name", "plain")
    refused = run("host", "score", "--bundle", other, code=2)
    assert "no stored bench of plain" in refused.stderr


def test_quantize_a_two_input_keras_model_calibrated_from_npz(tmp_path):
    """make quantize MODEL=m.keras TASK=raw CALIB=npz:calib.npz EVAL=npz:eval.npz: a model with an
    audio-feature input and a sensor-vector input, calibrated by position, every variant's outputs
    compared with Keras's own; a CALIB= the model cannot take is one line, exit 2, no bundle."""
    import tensorflow as tf
    keras = tf.keras
    feats, sensor = keras.Input((49, 10, 1), name="features"), keras.Input((6,), name="sensor")
    a = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(feats))
    merged = keras.layers.Concatenate()([a, keras.layers.Dense(8, activation="relu")(sensor)])
    model = keras.Model([feats, sensor], keras.layers.Dense(4)(merged))
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(40, 49, 10, 1)).astype(np.float32)
    x1 = rng.normal(size=(40, 6)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", features=x0[:32], sensor=x1[:32])       # by the Keras input names
    y0 = model.predict([x0[32:], x1[32:]], verbose=0)
    # by position: the .tflite's input order, which quantize prints (the converter sorts by name)
    np.savez(tmp_path / "eval.npz", x0=x1[32:], x1=x0[32:], y0=y0, labels=np.argmax(y0, axis=1))

    bad = _host(tmp_path, "quantize", "--model", tmp_path / "two.keras", "--name", "two",
                "--calib", f"folder:{tmp_path}", "--eval", f"npz:{tmp_path / 'eval.npz'}")
    assert bad.returncode == 2 and "(sensor, features) are not one image: calibrate it from npz:PATH" in bad.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "artifacts" / "two").exists()
    np.savez(tmp_path / "short.npz", x0=x0[:8])
    short = _host(tmp_path, "quantize", "--model", tmp_path / "two.keras", "--name", "two",
                  "--calib", f"npz:{tmp_path / 'short.npz'}")
    assert short.returncode == 2 and "1 input arrays for a model with 2 inputs (sensor, features)" in short.stderr
    np.savez(tmp_path / "swapped.npz", x0=x0[:8], x1=x1[:8])
    swapped = _host(tmp_path, "quantize", "--model", tmp_path / "two.keras", "--name", "two",
                    "--calib", f"npz:{tmp_path / 'swapped.npz'}")
    assert swapped.returncode == 2 and "input 0 (sensor) takes samples shaped [6]" in swapped.stderr

    proc = _host(tmp_path, "quantize", "--model", tmp_path / "two.keras", "--name", "two",
                 "--calib", f"npz:{tmp_path / 'calib.npz'}", "--eval", f"npz:{tmp_path / 'eval.npz'}")
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "inputs x0=sensor [1, 6] float32, x1=features [1, 49, 10, 1] float32; 32 calibration samples" in proc.stdout
    m = _manifest(tmp_path, "two")
    assert m["task"] == "raw" and set(m["variants"]) == {"fp32", "dynamic", "fp16", "int8"}
    assert m["calibration"] == {"source": f"npz:{tmp_path / 'calib.npz'}", "count": 32}
    assert m["eval"]["kind"] == "tensors" and "input" not in m
    fp32 = m["variants"]["fp32"]["host_metric"]["outputs"][0]
    assert fp32["max_abs_error"] < 1e-4
    int8 = m["variants"]["int8"]["host_metric"]
    assert int8["outputs"][0]["mean_cosine"] > 0.98 and int8["top1"] >= 0.75
    from device.runtimes.graph import analyse  # noqa: F401  (the board's reader opens the int8 file)
    from ai_edge_litert.interpreter import Interpreter
    i8 = Interpreter(model_path=str(tmp_path / "artifacts" / "two" / m["variants"]["int8"]["file"]))
    assert [d["dtype"].__name__ for d in i8.get_input_details()] == ["int8", "int8"]
    again = _host(tmp_path, "evaluate", "--name", "two")          # make evaluate scores the shipped npz again
    assert again.returncode == 0 and "int8     raw on npz:" in again.stdout and "warning" not in again.stdout


def test_the_summary_line_says_how_a_variant_agrees_with_fp32():
    from host.pipeline.tasks import metric_line
    fp32 = {"map": 0.5, "map50": 0.75}
    int8 = dict(fp32, agreement_with_fp32={"host": 7, "board": 3, "matched": 3 / 7, "extra_board": 0,
                                          "mean_iou": 0.93212, "max_score_diff": 0.11})
    assert metric_line("detect", fp32) == "mAP 0.5000, mAP@.5 0.7500"
    assert metric_line("detect", int8) == ("mAP 0.5000, mAP@.5 0.7500; vs fp32: 42.9 % of fp32's 7 boxes matched, "
                                           "mean IoU 0.9321")


def test_an_int8_detector_that_loses_its_scores_is_flagged_on_the_tasks_metric():
    """The INT8 check of a task model reads its own metric (mAP drop in points) and its agreement
    with FP32 (boxes matched), as a classifier's reads top-1: a head whose scores round to zero
    gives mAP 0 and no matched box, and must not pass as a bundle of zero detections."""
    from host.pipeline.byom import _task_loss
    from host.pipeline.options import Options
    opts = Options(model="m.keras", name="det")
    fp32 = {"map": 0.8953, "map50": 0.9733}
    lost = {"map": 0.0, "map50": 0.0, "agreement_with_fp32": {"host": 17, "board": 0, "matched": 0.0}}
    reasons, figures = _task_loss("detect", {"fp32": fp32, "int8": lost}, opts)
    assert reasons == ["mAP drop 89.53 pp > 1.0 pp", "boxes matched with fp32 0.00 % < 98 %"]
    assert figures == {"drop_pp": 89.53, "agreement_with_fp32": 0.0}
    kept = {"map": 0.8901, "agreement_with_fp32": {"host": 17, "board": 17, "matched": 1.0}}
    assert _task_loss("detect", {"fp32": fp32, "int8": kept}, opts)[0] == []          # -0.52 pp: within 1 pp
    seg = {"miou": 0.9, "agreement_with_fp32": {"pixels_equal": 0.95}}
    assert _task_loss("segment", {"fp32": {"miou": 0.9}, "int8": seg}, opts)[0] == [
        "pixels equal with fp32 95.00 % < 98 %"]
