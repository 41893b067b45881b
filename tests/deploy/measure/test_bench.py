"""`deploy bench` over a real sshd with the real agent and real .tflite models."""
import json
import zipfile

import pytest

from device.contract.schema import validate
from tests.deploy.conftest import cli

pytestmark = pytest.mark.timeout(300)


def results_for(client_home, host="board"):
    d = client_home.parent / "results" / host
    return sorted(d.glob("*.json")) if d.exists() else []


def test_bench_stores_a_valid_result_and_prints_a_table(first_deploy, client_home, trusted_board, bundle,
                                                          capsys, tmp_path):
    profile = tmp_path / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nnum_threads: [1, 2]\nnum_runs: 5\nwarmup_runs: 1\n"
                       "budgets: {min_top1: 0.0, max_peak_rss_mb: 4000}\n")
    assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile) == 0
    out = capsys.readouterr().out
    [path] = results_for(client_home)
    doc = json.loads(path.read_text())
    validate(doc)
    assert doc["deploy"]["release"] == first_deploy["release"] and doc["deploy"]["profile"] == "quick"
    by_variant = {r["variant"]: r for r in doc["results"]}
    assert sorted(by_variant) == ["fp32", "int8"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    for name, r in by_variant.items():
        assert r["status"] == "ok" and [run["threads"] for run in r["runs"]] == [1, 2]
        assert r["model"]["sha256"] == manifest["variants"][name]["sha256"]
        # the board's accuracy on eval.npz equals the host's (same preprocessing, same model)
        assert r["accuracy"]["top1"] == pytest.approx(manifest["variants"][name]["host_top1"])
    assert "int8 speed-up" in out and path.name in out

    # a second run adds a file and leaves the first one untouched
    before = path.read_bytes()
    assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile) == 0
    assert len(results_for(client_home)) == 2 and path.read_bytes() == before


def test_broken_budget_exits_non_zero(first_deploy, client_home, trusted_board, bundle, capsys, tmp_path):
    profile = tmp_path / "strict.yaml"
    profile.write_text("name: strict\narch: [x86_64, aarch64]\nnum_runs: 3\nwarmup_runs: 0\n"
                       "variants: [int8]\nbudgets: {max_p50_us: 0.001, min_top1: 1.01}\n")
    assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile) == 1
    captured = capsys.readouterr()
    assert "BUDGET BROKEN int8 threads=1: p50_us" in captured.out
    assert "top-1" in captured.out and "budget(s) of profile strict broken" in captured.err
    assert len(results_for(client_home)) == 1       # the measurement itself is still kept


def fake_agent(path, body: str):
    """An agent.pyz that misbehaves on purpose (the board side of a failure, for real over SSH)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__main__.py", body)
    return path


@pytest.mark.parametrize("case, body, expect", [
    ("invalid", "import json, sys\nprint(json.dumps({'schema': 'edgekit/result-v1'}))\n", "fails the schema"),
    ("killed", "import os, sys\nsys.stdout.write('{\"schema\": ')\nsys.stdout.flush()\nos.kill(os.getpid(), 9)\n",
     "gave no result"),
])
def test_bad_agent_output_is_rejected_not_stored(case, body, expect, first_deploy, client_home, trusted_board,
                                                  bundle, agent, tmp_path, capsys):
    bad = fake_agent(tmp_path / f"{case}.pyz", body)
    try:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", bad) == 0
        assert cli("bench", "--bundle", bundle, "--host", trusted_board) == 1
        assert expect in capsys.readouterr().err
        assert results_for(client_home) == []
        assert len(list((client_home.parent / "results" / "rejected" / "board").glob("*.json"))) == 1
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0


def test_bench_without_deploy_says_so(client_home, bundle, capsys):
    assert cli("bench", "--bundle", bundle, "--host", "local") == 1
    assert "nothing deployed yet; run `make deploy" in capsys.readouterr().err


def test_a_broken_model_fails_the_board_but_the_others_are_kept(first_deploy, client_home, trusted_board,
                                                                 bundle, agent, tmp_path, capsys):
    import shutil
    from device.contract.fileio import sha256_file
    broken = tmp_path / "tiny"
    shutil.copytree(bundle, broken)
    (broken / "int8.tflite").write_bytes(b"not a flatbuffer" * 64)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["variants"]["int8"]["sha256"] = sha256_file(broken / "int8.tflite")
    (broken / "manifest.json").write_text(json.dumps(manifest))
    try:
        assert cli("push", "--bundle", broken, "--host", trusted_board, "--agent", agent) == 0
        assert cli("bench", "--bundle", broken, "--host", trusted_board) == 1
        assert "1 model(s) failed on the board" in capsys.readouterr().err
        [path] = results_for(client_home)
        doc = json.loads(path.read_text())
        status = {r["variant"]: r["status"] for r in doc["results"]}
        assert status == {"fp32": "ok", "int8": "failed"}
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0


def agent_failing_on(real_agent, path, model_file: str):
    """The real agent, except that its bench of `model_file` dies without a result (killed)."""
    with zipfile.ZipFile(real_agent) as src, zipfile.ZipFile(path, "w") as out:
        for item in src.namelist():
            body = src.read(item)
            if item == "__main__.py":
                body = (f"import os, sys\nif 'bench' in sys.argv and any(a.endswith({model_file!r}) "
                        "for a in sys.argv):\n    os.kill(os.getpid(), 9)\n").encode() + body
            out.writestr(item, body)
    return path


def test_a_failed_agent_call_keeps_the_models_already_measured(first_deploy, client_home, trusted_board,
                                                                bundle, agent, tmp_path, capsys):
    manifest = json.loads((bundle / "manifest.json").read_text())
    last = list(manifest["variants"].values())[-1]["file"]     # every model before it is measured
    bad = agent_failing_on(agent, tmp_path / "dies.pyz", last)
    profile = tmp_path / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nnum_runs: 3\nwarmup_runs: 0\n")
    try:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", bad) == 0
        assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile) == 1
        assert "1 model(s) failed on the board" in capsys.readouterr().err
        [path] = results_for(client_home)
        doc = json.loads(path.read_text())
        validate(doc)
        by_file = {r["model"]["name"]: r for r in doc["results"]}
        assert set(by_file) == {v["file"] for v in manifest["variants"].values()}
        assert by_file[last]["status"] == "failed" and by_file[last]["error"]["kind"] == "crash"
        assert by_file[last]["model"]["sha256"] == list(manifest["variants"].values())[-1]["sha256"]
        for name, r in by_file.items():
            if name != last:
                assert r["status"] == "ok" and r["runs"] and r["accuracy"]["top1"] > 0
    finally:
        assert cli("push", "--bundle", bundle, "--host", trusted_board, "--agent", agent) == 0


def test_unreadable_release_json_is_one_line(client_home, bundle, capsys):
    edgekit = client_home / ".edgekit"
    (edgekit / "releases" / "0123456789ab").mkdir(parents=True)
    (edgekit / "releases" / "0123456789ab" / "release.json").write_text("{ half a file")
    (edgekit / "current").symlink_to("releases/0123456789ab")
    assert cli("bench", "--bundle", bundle, "--host", "local") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("release.json is unreadable (Expecting property name "
                                                 "enclosed in double quotes: line 1 column 3 (char 2)); "
                                                 "run `make deploy HOST=...` again")


def test_bench_with_a_video_ships_it_and_adds_the_end_to_end_figures(first_deploy, client_home, trusted_board,
                                                                      bundle, board, capsys, tmp_path):
    """make bench VIDEO=clip.mp4: without OpenCV on the board, one line says so and the timings are
    kept; with it (pip-installed into the board's venv), every variant gets its end-to-end figures."""
    import subprocess

    from tests.device.video.clips import write_clip
    clip = write_clip(tmp_path / "door.mp4", frames=30)
    profile = tmp_path / "quick.yaml"
    profile.write_text("name: quick\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 5\nwarmup_runs: 1\n"
                       "budgets: {min_top1: 0.0, max_peak_rss_mb: 4000}\n")
    python = board.board_home / "venv" / "bin" / "python"
    has_cv2 = subprocess.run([str(python), "-c", "import cv2"], capture_output=True).returncode == 0
    if not has_cv2:
        assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile, "--video", clip) == 1
        [path] = results_for(client_home)
        doc = json.loads(path.read_text())
        assert all(r["runs"] for r in doc["results"])           # the timings are kept
        assert any("video: needs OpenCV" in e for e in doc["errors"])
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "opencv-python-headless==4.11.0.86"], check=True, capture_output=True, timeout=600)
    shipped = list((board.board_home / "media").iterdir())
    assert [p.name.split("-", 1)[1] for p in shipped] == ["door.mp4"]
    before = set(results_for(client_home))
    capsys.readouterr()
    assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--profile", profile, "--video", clip) == 0
    assert "int8 end to end, 1 thread(s): " in capsys.readouterr().out
    [path] = set(results_for(client_home)) - before
    doc = json.loads(path.read_text())
    validate(doc)
    for r in doc["results"]:
        [e2e] = r["end_to_end"]
        assert (e2e["threads"], e2e["frames"], e2e["dropped"]) == (1, 30, 0) and e2e["fps"] > 0
        assert e2e["source"]["spec"] == f"video:{shipped[0]}"
    assert cli("bench", "--bundle", bundle, "--host", trusted_board, "--video", tmp_path / "none.mp4") == 2
