"""`infer MODEL --source SPEC`: the frame pipeline on videos and image sequences the tests write,
run as the real agent. Every answer must equal `infer` on the same pixels saved as PNG; drops are
counted when answering is slower than the source; recordings play back with the right frame
count; SIGTERM stops cleanly with the recording finalised."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cached_models import device_models, task_models
from tests.device.conftest import REPO, agent_env, run_agent
from tests.device.video import clips

pytestmark = pytest.mark.timeout(180)
ANSWER_KEYS = ("top_k", "detections", "segmentation", "keypoints", "poses", "outputs")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def _lines(text: str) -> tuple:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert "summary" in rows[-1], rows[-1]
    return rows[:-1], rows[-1]["summary"]


def _answer(record: dict) -> dict:
    return {k: record[k] for k in ANSWER_KEYS if k in record}


@pytest.mark.parametrize("model", ["segment", "yolo", "movenet", "classifier"])
def test_every_frame_is_answered_as_infer_answers_the_same_pixels(model, clip, tmp_path):
    path = device_models()["fp32"] if model == "classifier" else task_models()[model]
    run = run_agent("infer", path, "--source", f"video:{clip}", "--json", "-")
    assert run.code == 0, run.stderr
    frames, summary = _lines(run.stdout)
    assert summary["frames"] == len(frames) == 60 and summary["dropped"] == 0
    pngs = clips.save_pngs(clips.frames_of(clip), str(tmp_path / "png"))
    want = run_agent("infer", path, *pngs, "--json", "-")
    assert want.code == 0, want.stderr
    expected = want.doc["results"][0]["predictions"]
    assert [_answer(f) for f in frames] == [_answer(p) for p in expected]
    assert [f["input"] for f in frames] == [f"{clip}[{i}]" for i in range(60)]
    if model == "segment":      # the answers really follow the moving shapes
        assert len({json.dumps(_answer(f)) for f in frames}) > 10
    for f in frames:
        assert set(f["stages_ms"]) == {"capture_wait", "decode", "preprocess", "invoke", "postprocess", "draw"}
        assert f["latency_ms"] >= f["stages_ms"]["invoke"]


def test_a_source_faster_than_the_answers_drops_the_older_frames(clip):
    run = run_agent("infer", task_models()["segment"], "--source", f"video:{clip}", "--realtime",
                    "--max-rate", "5", "--json", "-")
    assert run.code == 0, run.stderr
    frames, summary = _lines(run.stdout)
    assert summary["frames"] == len(frames)
    assert summary["frames"] + summary["dropped"] == 60         # every frame answered or dropped
    assert summary["dropped"] >= 30 and 5 <= summary["frames"] <= 20
    indices = [int(f["input"].rsplit("[", 1)[1][:-1]) for f in frames]
    assert indices == sorted(indices) and indices[-1] >= 50    # the newest frames, not the first ones
    assert summary["source"]["delivered"] == {"width": 160, "height": 120, "fps": 30.0}


def test_a_file_read_as_fast_as_possible_drops_nothing_even_when_answering_is_slow(clip):
    run = run_agent("infer", task_models()["segment"], "--source", f"video:{clip}", "--max-rate", "100",
                    "--json", "-")
    frames, summary = _lines(run.stdout)
    assert run.code == 0 and summary["frames"] == 60 and summary["dropped"] == 0


def test_the_recording_plays_back_with_every_answered_frame(clip, tmp_path):
    out = tmp_path / "annotated.mp4"
    run = run_agent("infer", task_models()["yolo"], "--source", f"video:{clip}", "--record", out,
                    "--json", tmp_path / "frames.jsonl")
    assert run.code == 0, run.stderr
    frames, summary = _lines((tmp_path / "frames.jsonl").read_text())
    assert clips.count_frames(out) == summary["frames"] == summary["recorded"]["frames"] == 60
    assert summary["recorded"]["size"] == [160, 120]
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    drawn = clips.frames_of(out)[0]
    plain = clips.frames_of(clip)[0]
    assert abs(drawn.astype(int) - plain.astype(int)).max() > 100      # the boxes are drawn on it


def test_images_of_changing_size_with_a_corrupt_one_are_skipped_counted_and_recorded(tmp_path):
    frames = clips.frames_of(clips.write_clip(tmp_path / "a.mp4", frames=4, size=(96, 64)))
    frames += clips.frames_of(clips.write_clip(tmp_path / "b.mp4", frames=3, size=(64, 96)))
    folder = tmp_path / "seq"
    clips.save_pngs(frames, str(folder))
    (folder / "0004.png").write_bytes(b"not a png")            # between the sizes
    out = tmp_path / "seq.avi"
    run = run_agent("infer", task_models()["yolo"], "--source", f"images:{folder}", "--record", out, "--json", "-")
    assert run.code == 0, run.stderr
    answers, summary = _lines(run.stdout)
    assert (summary["frames"], summary["corrupt"], summary["dropped"]) == (6, 1, 0)
    assert clips.count_frames(out) == 6
    widths = {a["input"]: a["detections"][0]["box"][2] for a in answers}
    assert widths[str(folder / "0000.png")] != widths[str(folder / "0005.png")]   # boxes at each image's size


def test_sigterm_stops_within_a_second_with_the_recording_finalised(clip, tmp_path):
    out, lines = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "device", "infer", task_models()["segment"], "--source",
                             f"video:{clip}", "--realtime", "--fps", "10", "--record", str(out), "--json", str(lines)],
                            cwd=REPO, env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not lines.exists() or len(lines.read_text().splitlines()) < 3):
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 1.0 and proc.returncode == 0, err
    frames, summary = _lines(lines.read_text())
    assert 3 <= summary["frames"] < 60 and "frames," in err
    assert clips.count_frames(out) == summary["frames"]


def test_a_missing_camera_names_the_video_devices_that_exist(agent):
    run = agent("infer", task_models()["yolo"], "--source", "camera:7")
    assert run.code == 2
    devices = sorted(p for p in os.listdir("/dev") if p.startswith("video"))
    listed = ", ".join(f"/dev/{d}" for d in devices) or "none"
    assert run.stderr.strip().splitlines()[-1] == \
        f"edgekit-agent: error: camera:7: no /dev/video7 (video devices here: {listed})"


@pytest.mark.parametrize("spec,message", [
    ("webcam", "--source 'webcam': expected one of video:CLIP, images:FOLDER, camera:N, rtsp://..., "
               "http://..., picamera2"),
    ("video:/no/such.mp4", "video:/no/such.mp4: no such file"),
    ("images:/no/such", "images:/no/such: not a directory"),
])
def test_bad_specs_are_one_line_and_exit_2(spec, message, agent):
    run = agent("infer", task_models()["yolo"], "--source", spec)
    assert run.code == 2 and run.stderr.strip().splitlines()[-1] == f"edgekit-agent: error: {message}"


def test_without_opencv_the_video_sources_say_so_and_images_still_work(clip, tmp_path):
    fake = tmp_path / "nocv" / "cv2"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {"PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"}
    run = run_agent("infer", task_models()["yolo"], "--source", f"video:{clip}", env=env)
    assert run.code == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "edgekit-agent: error: video: needs OpenCV (make deploy EXTRAS=opencv-python-headless, or pip install "
        "opencv-python-headless, or on Pi OS apt install python3-opencv); files, stdin, .npy and images: work "
        "without it")
    clips.save_pngs(clips.frames_of(clip)[:3], str(tmp_path / "seq"))
    run = run_agent("infer", task_models()["yolo"], "--source", f"images:{tmp_path / 'seq'}", "--json", "-", env=env)
    assert run.code == 0, run.stderr
    assert _lines(run.stdout)[1]["frames"] == 3


def test_bench_with_a_source_adds_the_end_to_end_figures_per_thread_count(clip, agent):
    run = agent("bench", task_models()["segment"], "--num_runs", "5", "--warmup_runs", "1", "--min_secs", "0",
                "--num_threads", "1,2", "--source", f"video:{clip}", "--json", "-")
    assert run.code == 0, run.stderr
    doc = run.doc
    assert doc["errors"] == []      # the document passed the result schema (results.finish)
    e2e = doc["results"][0]["end_to_end"]
    assert [e["threads"] for e in e2e] == [1, 2]
    for e in e2e:
        assert (e["frames"], e["dropped"], e["task"]) == (60, 0, "segment")
        assert e["fps"] > 0 and e["latency_ms"]["p99"] >= e["latency_ms"]["p50"] > 0
        assert set(e["stages_ms"]) == {"capture_wait", "decode", "preprocess", "invoke", "postprocess", "draw"}
        assert e["source"]["spec"] == f"video:{clip}" and e["rss_mb"] > 0


@pytest.mark.parametrize("command", ["infer", "serve"])
def test_a_model_without_an_image_input_is_refused_before_any_frame(command, clip, agent):
    run = agent(command, task_models()["raw"], "--source", f"video:{clip}", *(["--port", "0"] if command == "serve" else []))
    assert run.code == 2
    assert run.stderr.strip().splitlines()[-1] == \
        "edgekit-agent: error: --source needs a model with an image input; this one takes float32[1, 16]"


def test_source_with_draw_is_a_usage_error(clip, agent):
    run = agent("infer", task_models()["yolo"], "--source", f"video:{clip}", "--draw", "x.jpg")
    assert run.code == 2 and "--record writes the annotated frames" in run.stderr


def test_a_detection_runs_the_command_once_per_cooldown_with_the_answer(clip, tmp_path):
    log = tmp_path / "events.jsonl"
    hook = (f"{sys.executable} -c \"import json, os, sys; a = json.load(sys.stdin); "
            f"open({str(log)!r}, 'a').write(json.dumps([os.environ['EDGEKIT_LABEL'], a['trigger'], a['input']]) + '\\n')\"")
    run = run_agent("infer", task_models()["yolo"], "--source", f"video:{clip}", "--on-detect", "0>=0.85",
                    "--exec", hook, "--cooldown", "60", "--json", "-")
    assert run.code == 0, run.stderr
    assert _lines(run.stdout)[1]["triggers"] == 1
    [event] = [json.loads(line) for line in log.read_text().splitlines()]
    assert event[0] == "0" and event[1]["score"] == 0.9 and event[2] == f"{clip}[0]"
    run = run_agent("infer", task_models()["yolo"], "--source", f"video:{clip}", "--on-detect", "0>=0.95",
                    "--exec", hook, "--json", "-")
    assert _lines(run.stdout)[1]["triggers"] == 0 and len(log.read_text().splitlines()) == 1


@pytest.mark.parametrize("flags,message", [
    (["--on-detect", "person>=0.5"], "--on-detect needs --exec CMD or --webhook URL"),
    (["--on-detect", ">=x", "--exec", "true"], "--on-detect '>=x': expected LABEL>=SCORE"),
    (["--on-detect", "cat", "--webhook", "file:///etc/passwd"], "--webhook 'file:///etc/passwd': expected an http"),
])
def test_bad_triggers_are_usage_errors(flags, message, clip, agent):
    run = agent("infer", task_models()["yolo"], "--source", f"video:{clip}", *flags)
    assert run.code == 2 and message in run.stderr


def test_a_detection_posts_the_answer_to_the_webhook(clip):
    import http.server
    import threading
    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = run_agent("infer", task_models()["yolo"], "--source", f"video:{clip}", "--realtime", "--fps", "60",
                        "--on-detect", "*>=0.5", "--webhook", f"http://127.0.0.1:{server.server_address[1]}/door",
                        "--cooldown", "0.4", "--json", "-")
        deadline = time.monotonic() + 10
        summary = _lines(run.stdout)[1]
        while len(got) < summary["triggers"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert run.code == 0 and 2 <= summary["triggers"] <= 4     # 1 s of frames, one trigger per 0.4 s
    assert len(got) == summary["triggers"] and got[0]["trigger"] == {"label": "0", "class_id": 0, "score": 0.9,
                                                                    "box": got[0]["detections"][0]["box"]}
