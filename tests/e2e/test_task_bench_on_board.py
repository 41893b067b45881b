"""`make bench` of task bundles on the emulated aarch64 board (trixie), scored end to end: each bundle
is made on the host as `make bundle` makes it (its EVAL= set's images fitted into eval.npz beside the
host's predictions), pushed to the board, benched there with `make bench`, and the board's
predictions from the stored result scored by the host (pycocotools for mAP and OKS AP, the
confusion matrix for mIoU) - the board's figure must equal the host's. A detector (YOLO head), a
segmenter, a MoveNet pose model on a COCO keypoints set, and the MLPerf Tiny keyword-spotting model
as TASK=raw on an npz of the host's own outputs (top-1 equal, every output within one int8 step).
The board holds one release at a time, so one push per bundle; the runtime is installed once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.device.conftest import SHARED_MODELS
from tests.e2e.conftest import BUILD_TIMEOUT_S, REPO, deploy_env
from tests.e2e.test_deploy_flow import DEPLOY_TIMEOUT_S, run_deploy
from tests.host.metrics.test_results import _set as coco_set

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S)
KWS = os.path.join(SHARED_MODELS, "kws_ref_model.tflite")
INT8_STEP = 1 / 256 + 1e-6          # the KWS model's softmax output: int8 with scale 1/256


def _mask_set(root: Path) -> str:
    """Two images of red, green and blue bands; the masks are right except for a strip called
    class 0 where the image is blue, and 255 (ignored) in a corner."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(((64, 96), (48, 80))):
        arr, mask = np.zeros((h, w, 3), dtype=np.uint8), np.zeros((h, w), dtype=np.uint8)
        bands = np.array_split(np.arange(w), 3)
        for cls, cols in enumerate(bands if i == 0 else bands[::-1]):
            arr[:, cols, cls] = 255
            mask[:, cols] = cls
        mask[:, bands[2 if i == 0 else 0][::5]] = 0          # blue band, wrongly labelled 0 every 5th column
        mask[:4, :4] = 255
        Image.fromarray(arr).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"s{i}.png")
    return f"masks:{root / 'images'}:{root / 'masks'}"


def _pose_set(root: Path) -> str:
    """A COCO keypoints set for the MoveNet-style model (its 17 points are constants, normalised to the
    input; stretched onto a 160x120 image): one person labelled close to them, a second nowhere near
    anything the model finds - OKS AP strictly between 0 and 1."""
    from device.tasks.keypoints import NAMES
    from tests.device.task_models import MOVENET
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((120, 160, 3), 90, dtype=np.uint8)).save(root / "images" / "p.png")
    y, x = MOVENET[0, 0, :, 0] * 120, MOVENET[0, 0, :, 1] * 160
    near = [v for i in range(17) for v in (float(x[i]) + (i % 3), float(y[i]), 2)]
    far = [v for i in range(17) for v in (5.0 + i, 100.0 + (i % 4), 2)]
    people = [(near, [float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y))]),
              (far, [5.0, 100.0, 16.0, 3.0])]
    coco = {"images": [{"id": 1, "file_name": "p.png", "width": 160, "height": 120}],
            "categories": [{"id": 1, "name": "person", "keypoints": list(NAMES)}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": box, "area": box[2] * box[3] + 400,
                             "iscrowd": 0, "keypoints": kps, "num_keypoints": 17}
                            for i, (kps, box) in enumerate(people)]}
    (root / "person_keypoints.json").write_text(json.dumps(coco))
    return f"coco:{root / 'person_keypoints.json'}:{root / 'images'}"


def _kws_set(root: Path) -> str:
    """Eight int8 feature maps, the host's own (dequantised) outputs of the model as y0, and labels
    that agree with the host's argmax on six of them: the board's max |error| is its distance from
    the host, its top-1 must be the host's 0.75."""
    from ai_edge_litert.interpreter import Interpreter
    rng = np.random.default_rng(23)
    x = rng.integers(-128, 128, (8, 49, 10, 1), dtype=np.int8)
    interp = Interpreter(model_path=KWS, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = out["quantization"]
    ys = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        ys.append((interp.get_tensor(out["index"])[0].astype(np.float64) - zero) * scale)
    y0 = np.stack(ys).astype(np.float32)
    labels = np.argmax(y0, axis=1)
    labels[:2] = (labels[:2] + 1) % y0.shape[1]
    np.savez(root / "kws.npz", x=x, y0=y0, labels=labels)
    return f"npz:{root / 'kws.npz'}"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """name -> a task bundle made by `python -m host bundle` (what `make bundle` runs)."""
    from tests.cached_models import task_models
    root = tmp_path_factory.mktemp("task-bench")
    models = task_models()
    (root / "det").mkdir()
    made = {"det": (models["yolo"], coco_set(root / "det"), "labels"),
            "seg": (models["segment"], _mask_set(root / "seg"), None),
            "pose": (models["movenet"], _pose_set(root / "pose"), None)}
    if os.path.isfile(KWS):
        made["kws"] = (KWS, _kws_set(root), "raw")
    env = dict(deploy_env(root), EDGEKIT_ARTIFACTS=str(root / "artifacts"))
    procs = {}
    for name, (model, spec, extra) in made.items():
        args = ["--model", str(model), "--eval", spec, "--name", name]
        if extra == "labels":
            args += ["--labels", str(root / "det" / "labels.txt")]
        elif extra == "raw":
            args += ["--task", "raw"]
        procs[name] = subprocess.Popen([sys.executable, "-m", "host", "bundle", *args], cwd=REPO, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"bundle {name}:\n{out[-1500:]}\n{err[-1500:]}"
    return {name: root / "artifacts" / name for name in made}


@pytest.fixture(scope="module")
def benched(board, board_home, bundles, tmp_path_factory) -> dict[str, tuple[dict, str, dict, Path]]:
    """name -> (the stored bench result, what `make bench` printed, the bundle's manifest, the result's
    path): push each bundle, then `make bench HOST=<board> PROFILE=<quick>` (deploy bench, then host
    score --newest). A quick profile: 1 thread, 3 runs (the eval set is what is checked here)."""
    root = tmp_path_factory.mktemp("task-results")
    profile = root / "quick.yaml"
    profile.write_text("name: aarch64-tasks\ndescription: e2e tasks (test)\narch: [aarch64]\nnum_threads: [1]\n"
                       "num_runs: 3\nwarmup_runs: 1\ncooldown: 0\ntimeout: 600\n")
    env = dict(deploy_env(board_home), EDGEKIT_RESULTS=str(root / "results"))
    out = {}
    for name, bundle in bundles.items():
        run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name)
        make = subprocess.run(["make", "-s", "bench", f"HOST={board.name}", f"BUNDLE={bundle}", f"PROFILE={profile}"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S)
        assert make.returncode == 0, f"make bench {name}:\n{make.stdout[-2000:]}\n{make.stderr[-2000:]}"
        [path] = [p for p in (root / "results" / board.name).glob("*.json") if json.loads(p.read_text())
                  ["deploy"]["bundle"] == name]
        out[name] = (json.loads(path.read_text()), make.stdout, json.loads((bundle / "manifest.json").read_text()),
                     path)
    return out


def _score(bundle: Path, result: Path, tmp_path: Path) -> dict:
    """`python -m host score --bundle B RESULT --json` (make score): per variant board, host, agreement."""
    proc = subprocess.run([sys.executable, "-m", "host", "score", "--bundle", str(bundle), str(result), "--json",
                           str(tmp_path / "s.json")], cwd=REPO, env=deploy_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    (variant,) = json.loads((tmp_path / "s.json").read_text())["variants"].values()
    return variant


def _entry(doc: dict, board) -> dict:
    assert doc["device"]["arch"] == "aarch64" and doc["device"]["emulated"] is True
    assert doc["device"]["hostname"] == board.name
    (entry,) = doc["results"]
    assert entry["status"] == "ok"
    return entry


def _printed(stdout: str, board, what: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(f"{board.name} ") and what in line]
    assert len(lines) == 1, stdout[-2000:]
    return lines[0]


def test_the_boards_detections_score_the_hosts_map(board, bundles, benched, tmp_path):
    doc, printed, manifest, path = benched["det"]
    entry = _entry(doc, board)
    assert entry["task"] == "detect" and len(entry["predictions"]) == 1
    v = _score(bundles["det"], path, tmp_path)
    host_map = manifest["variants"][entry["variant"]]["host_metric"]["map"]
    assert v["board"]["map"] == v["host"]["map"] == host_map == pytest.approx(2 / 3)   # cat 1, dog 1, bird 0
    assert v["board"]["map50"] == v["host"]["map50"]
    assert v["agreement"]["matched"] == 1.0 and v["agreement"]["mean_iou"] >= 0.99
    # what `make bench` printed after the bench: the board's figure beside the host's, and agreement
    assert f"detect: board map {host_map:.4f}," in _printed(printed, board, "detect: board")
    assert f"detect: host  map {host_map:.4f}," in _printed(printed, board, "detect: host ")
    agreed = dict(item.split(" ") for item in _printed(printed, board, "board vs host").split(": ", 1)[1].split(", "))
    assert agreed["matched"] == "1.0000" and agreed["extra_board"] == "0" and float(agreed["mean_iou"]) >= 0.99
    # the check has teeth: the board's dog box moved by 6 px (IoU 0.27) scores lower and goes unmatched
    moved = json.loads(path.read_text())
    for d in moved["results"][0]["predictions"][0]["detections"]:
        if d["label"] == "dog":
            d["box"] = [c + 6 for c in d["box"]]
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    w = _score(bundles["det"], tmp_path / "moved.json", tmp_path)
    assert w["board"]["map"] == pytest.approx(1 / 3) and w["host"]["map"] == host_map
    assert w["agreement"]["matched"] == pytest.approx(2 / 3)


def test_the_boards_masks_score_the_hosts_miou(board, bundles, benched, tmp_path):
    doc, printed, manifest, path = benched["seg"]
    entry = _entry(doc, board)
    assert entry["task"] == "segment" and len(entry["predictions"]) == 2
    v = _score(bundles["seg"], path, tmp_path)
    host_miou = manifest["variants"][entry["variant"]]["host_metric"]["miou"]
    assert 0 < host_miou < 1                       # the strips labelled 0 on blue cost IoU
    assert v["board"]["miou"] == v["host"]["miou"] == host_miou
    assert v["board"]["pixel_accuracy"] == v["host"]["pixel_accuracy"]
    assert v["agreement"]["pixels_equal"] >= 0.99
    assert f"segment: board miou {host_miou:.4f}," in _printed(printed, board, "segment: board")
    assert f"segment: host  miou {host_miou:.4f}," in _printed(printed, board, "segment: host ")


def test_the_boards_poses_score_the_hosts_oks_ap(board, bundles, benched, tmp_path):
    doc, printed, manifest, path = benched["pose"]
    entry = _entry(doc, board)
    assert entry["task"] == "keypoints"
    v = _score(bundles["pose"], path, tmp_path)
    host_ap = manifest["variants"][entry["variant"]]["host_metric"]["ap"]
    assert 0 < host_ap < 1                         # one person found, one missed
    assert v["board"]["ap"] == v["host"]["ap"] == host_ap and v["board"]["ap50"] == v["host"]["ap50"]
    assert f"keypoints: board ap {host_ap:.4f}," in _printed(printed, board, "keypoints: board")
    assert f"keypoints: host  ap {host_ap:.4f}," in _printed(printed, board, "keypoints: host ")


def test_keyword_spotting_on_the_board_gives_the_hosts_top1_within_one_int8_step(board, bundles, benched):
    if "kws" not in benched:
        pytest.skip(f"{KWS} is not here (../shared/models): the MLPerf Tiny KWS model runs in CI")
    doc, printed, manifest, path = benched["kws"]
    entry = _entry(doc, board)
    host = manifest["variants"][entry["variant"]]["host_metric"]
    assert entry["task"] == "raw" and entry["tensors"]["count"] == 8
    (out,) = entry["tensors"]["outputs"]
    assert host["outputs"][0]["max_abs_error"] == 0.0              # y0 is the host's own output
    assert out["max_abs_error"] <= INT8_STEP and out["mean_cosine"] >= 0.999
    assert entry["accuracy"]["top1"] == host["top1"] == 0.75
