"""Reports and comparisons from real agent results on real models (no hand-written numbers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def agent_bench(models: list[Path], out: Path, *extra: str) -> Path:
    """The real device agent, as a separate process (it must not share TensorFlow's process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "device", "bench", *map(str, models), "--num_runs", "200",
                           "--warmup_runs", "20", "--json", str(out), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def results_tree(tiny_bundle, tmp_path_factory):
    """results/<board>/<file>.json as deploy stores it: the agent's document plus a `deploy` block."""
    root = tmp_path_factory.mktemp("results")
    raw = agent_bench([tiny_bundle / "fp32.tflite", tiny_bundle / "int8.tflite"], root / "raw.json",
                      "--num_threads", "1,2")
    doc = json.loads(raw.read_text())
    raw.unlink()
    doc["deploy"] = {"host": "testboard", "bundle": "digits", "profile": "local", "release": "r1",
                     "info_before": None, "info_after": None}
    (root / "testboard").mkdir()
    (root / "testboard" / "20260101T000000Z-digits.json").write_text(json.dumps(doc))
    (root / "testboard" / "20250101T000000Z-broken.json").write_text("{not json")
    return root


def test_report(results_tree, tiny_bundle, tmp_path, monkeypatch):
    from host.report import build as report

    monkeypatch.setattr(report, "ARTIFACTS", tiny_bundle.parent)
    out = tmp_path / "reports"
    path = report.write_report(html=True, results=results_tree, out=out)
    md = path.read_text()
    assert "## testboard — bundle `digits`" in md
    import re
    m = re.search(r"INT8 is [\d.]+× smaller and ([\d.]+)× (faster|slower) than FP32 on testboard", md)
    assert m and float(m.group(1)) >= 1.0, "a ratio below 1 is said the other way round"
    rows = [line for line in md.splitlines() if line.startswith("| int8 |") or line.startswith("| fp32 |")]
    assert len(rows) == 4  # 2 variants x threads 1,2
    assert "20250101T000000Z-broken.json" in md  # skipped, and said so
    for png in ("latency_testboard_digits.png", "threads_testboard_digits.png", "training_digits.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    html = (out / "benchmark_report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html
    assert "<li>" in html and "<h2>" in html and "**" not in html      # markdown, not paragraphs of it


def test_compare_same_model_is_within_noise(tiny_bundle, tmp_path):
    from host.compare.results import compare_main

    a = agent_bench([tiny_bundle / "int8.tflite"], tmp_path / "a.json")
    b = agent_bench([tiny_bundle / "int8.tflite"], tmp_path / "b.json")
    assert compare_main(str(a), str(b), threshold_pct=50.0) == 0


def test_compare_flags_a_real_slowdown(tiny_bundle, tmp_path):
    """B is a genuinely heavier model under the same name: the gate must fail."""
    from host.compare.results import compare_main
    from host.convert.quantize import convert_all
    from host.model.architecture import build_model
    import numpy as np

    heavy = build_model((64, 64, 1), 10, alpha=1.0)
    data = convert_all(heavy, np.random.default_rng(0).random((8, 64, 64, 1)).astype("float32"), ("int8",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "int8.tflite").write_bytes(data["int8"])
    a = agent_bench([tiny_bundle / "int8.tflite"], tmp_path / "a.json")
    b = agent_bench([tmp_path / "b" / "int8.tflite"], tmp_path / "b.json")
    assert compare_main(str(a), str(b)) == 1


def test_compare_bad_input(tmp_path, capsys):
    from host.compare.results import compare_main

    (tmp_path / "x.json").write_text('{"schema": "nope"}')
    with pytest.raises(ValueError, match="fails the result schema"):
        compare_main(str(tmp_path / "x.json"), str(tmp_path / "x.json"))
    with pytest.raises(FileNotFoundError):
        compare_main(str(tmp_path / "missing.json"), str(tmp_path / "x.json"))
    assert compare_main("", "") == 2


def test_compare_refuses_two_different_boards(tiny_bundle, tmp_path, capsys):
    """A gate across boards would blame the model for the board: refused unless asked for."""
    from host.compare.results import compare_main

    a = agent_bench([tiny_bundle / "int8.tflite"], tmp_path / "a.json")
    doc = json.loads(a.read_text())
    doc["device"]["arch"], doc["device"]["emulated"] = "aarch64", True
    (tmp_path / "b.json").write_text(json.dumps(doc))
    assert compare_main(str(a), str(tmp_path / "b.json")) == 2
    assert "a regression gate needs one board" in capsys.readouterr().err
    assert compare_main(str(a), str(tmp_path / "b.json"), threshold_pct=50.0, cross_board=True) == 0


def test_the_report_shows_the_end_to_end_figures_and_the_stage_split(tiny_bundle, tmp_path, monkeypatch):
    """make bench VIDEO=...: the agent's end_to_end entries become a table and a stage-split plot."""
    from host.report import build as report
    from tests.device.video.clips import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    root = tmp_path / "results"
    raw = agent_bench([tiny_bundle / "int8.tflite"], tmp_path / "raw.json", "--num_threads", "1,2",
                      "--source", f"video:{clip}")
    doc = json.loads(raw.read_text())
    doc["deploy"] = {"host": "camboard", "bundle": "digits", "profile": "local", "release": "r1",
                     "info_before": None, "info_after": None}
    (root / "camboard").mkdir(parents=True)
    (root / "camboard" / "20260101T000000Z-digits.json").write_text(json.dumps(doc))
    monkeypatch.setattr(report, "ARTIFACTS", tiny_bundle.parent)
    md, images = report.build_report(results=root, out=tmp_path / "reports")
    assert f"### End to end: frames from `video:{clip}`" in md
    after = md.split("### End to end: frames from", 1)[1]
    rows = [line for line in after.splitlines() if line.startswith("| int8 | ")][:2]
    fps = [e["fps"] for e in doc["results"][0]["end_to_end"]]
    assert [r.split(" | ")[1:3] for r in rows] == [["1", f"{fps[0]:.1f}"], ["2", f"{fps[1]:.1f}"]]
    assert "stages_camboard_digits.png" in images and (tmp_path / "reports" / "stages_camboard_digits.png").stat().st_size > 1000
