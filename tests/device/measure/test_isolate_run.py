"""Crash isolation (device/isolate.run) called in-process with real child processes: each way a
child can end (result, error, timeout, signal, exit without a result) gives its own report, the
same for a spawned child and a forked one (infer's).

Fast (cached real models, no TensorFlow in the test run) so `make mutate` can use it; the agent-level
tests of the same behaviour are in test_isolation.py.
"""
from __future__ import annotations

import glob
import os
import signal
import sys
import tempfile
import threading
import time

import psutil
import pytest

from device.measure import isolate
from device.runtimes import registry as runtime
from tests.cached_models import device_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def models():
    return device_models()


def bench_job(model: str, **kw) -> dict:
    info = runtime.resolve()
    job = {"job": "bench", "runtime": {"name": info.name, "version": info.version, "module": info.module},
           "threads": [1], "xnnpack": [True], "num_runs": 3, "warmup_runs": 0, "min_secs": 0.0,
           "max_samples": 100, "input_files": [], "seed": 0, "model_path": model, "sha256": None}
    job.update(kw)
    return job


@pytest.fixture(params=[False, True], ids=["spawn", "fork"])
def fork(request):
    return request.param


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """isolate's temp files land here, so a test can see that none is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_package_root_is_the_repo():
    assert isolate.package_root() == REPO


def test_a_good_job_returns_the_childs_result(models, private_tmp, fork):
    out = isolate.run(bench_job(models["fp32"]), timeout=60, fork=fork)
    assert out["ok"] is True and set(out) == {"ok", "result"}
    run = out["result"]["runs"][0]
    assert run["count"] == 3 and len(run["samples_us"]) == 3
    assert out["result"]["memory"]["rss_start_mb"] > 0, "the child measured itself from its start"
    assert not glob.glob(str(private_tmp / "edgekit-child-*")), "the result file is removed"


def test_an_error_in_the_job_is_reported_with_stderr(models, private_tmp, fork):
    out = isolate.run(bench_job(str(private_tmp / "missing.tflite")), timeout=60, fork=fork)
    assert out["ok"] is False
    err = out["error"]
    assert err["kind"] == "load" and "missing.tflite" in err["message"]
    assert "stderr_tail" in err and isinstance(err["stderr_tail"], str)
    assert not glob.glob(str(private_tmp / "edgekit-child-*"))


def test_a_hang_is_timed_out(models, private_tmp, fork):
    before = {c.pid for c in psutil.Process().children()}
    t0 = time.monotonic()
    out = isolate.run(bench_job(models["hang"]), timeout=3, fork=fork)
    assert time.monotonic() - t0 < 30
    assert out == {"ok": False, "error": {"kind": "timeout", "message": "timed out after 3 s", "signal": None,
                                          "exit_code": None, "stderr_tail": out["error"]["stderr_tail"]}}
    assert isinstance(out["error"]["stderr_tail"], str)
    assert not [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    assert not glob.glob(str(private_tmp / "edgekit-child-*"))


def _child_of_this_process(before: set, fork: bool, timeout: float = 60.0) -> psutil.Process:
    """The new child: by its command line when spawned, as the one new child when forked (a fork
    has the test's own command line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in psutil.Process().children():
            try:
                if c.pid not in before and (fork or "child_main" in " ".join(c.cmdline())):
                    return c
            except psutil.Error:
                pass
        time.sleep(0.01)
    raise AssertionError("no child process appeared")


@pytest.mark.parametrize("sig,name", [(signal.SIGSEGV, "SIGSEGV"), (signal.SIGKILL, "SIGKILL")])
def test_a_child_killed_by_a_signal_is_a_crash(models, private_tmp, sig, name, fork):
    box = {}
    before = {c.pid for c in psutil.Process().children()}
    worker = threading.Thread(target=lambda: box.update(out=isolate.run(bench_job(models["hang"]), timeout=90,
                                                                        fork=fork)))
    worker.start()
    child = _child_of_this_process(before, fork)   # readiness: the child process exists
    # while it runs, its result file waits under a recognisable name (found and removed by name)
    assert [os.path.basename(p) for p in glob.glob(str(private_tmp / "*"))] == \
        glob.glob("edgekit-child-*.json", root_dir=private_tmp)
    assert len(glob.glob(str(private_tmp / "edgekit-child-*.json"))) == 1
    child.send_signal(sig)
    worker.join(120)
    err = box["out"]["error"]
    assert box["out"]["ok"] is False
    assert err == {"kind": "crash", "message": f"child process died with {name}", "signal": name,
                   "exit_code": -sig, "stderr_tail": err["stderr_tail"]}


EXITS = """import os, sys
print("noise on the child's stdout", flush=True)
sys.stderr.write("first line\\n\\n   \\n")
for i in range(30):
    sys.stderr.write("line %d\\n" % i)
sys.stderr.write("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
sys.stderr.write("TF_CPP_MIN_LOG_LEVEL=%s\\n" % os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
sys.stderr.write("path0=%s\\n" % sys.path[0])
sys.stderr.flush()
sys.stderr.buffer.write(b"bad \\xff bytes\\n")   # not UTF-8: reported, not a crash of the parent
sys.exit(7)
"""


def test_exit_without_a_result_and_the_stderr_tail(models, private_tmp, monkeypatch, capfd, fork):
    """A runtime module that exits on import: the child ends with code 7 and no result file."""
    (private_tmp / "exits_on_import.py").write_text(EXITS)
    monkeypatch.setenv("PYTHONPATH", str(private_tmp))
    monkeypatch.syspath_prepend(str(private_tmp))       # a forked child imports with our sys.path
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    job = bench_job(models["fp32"], runtime={"name": "x", "version": None, "module": "exits_on_import"})
    out = isolate.run(job, timeout=60, fork=fork)
    err = out["error"]
    assert out["ok"] is False
    assert {k: err[k] for k in ("kind", "message", "signal", "exit_code")} == {
        "kind": "crash", "message": "child process exited with code 7 without a result", "signal": None,
        "exit_code": 7}
    tail = err["stderr_tail"].split("\n")
    path0 = sys.path[0] if fork else REPO         # a spawned child puts the agent's root first
    assert len(tail) == 20 and tail[-3:] == ["TF_CPP_MIN_LOG_LEVEL=2", f"path0={path0}", "bad \ufffd bytes"]
    assert tail[0] == "line 13" and not any("XNNPACK delegate for CPU" in ln for ln in tail)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ, "the child's default is set in its env, not ours"
    assert "noise" not in capfd.readouterr().out, "the child's stdout never reaches ours (it may be JSON)"


def test_tail_filters_blank_and_delegate_lines():
    text = "a\n\n  \nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nb\nc\n"
    assert isolate._tail(text) == "a\nb\nc"
    assert isolate._tail(text, 2) == "b\nc"
    assert isolate._tail("\n".join(str(i) for i in range(25))) == "\n".join(str(i) for i in range(5, 25))


def test_signal_names():
    assert isolate._signal_name(11) == "SIGSEGV"
    assert isolate._signal_name(999) == "signal 999"


def test_progress_lines_reach_our_stderr(models, private_tmp, monkeypatch, capfd):
    monkeypatch.setenv("EDGEKIT_PROGRESS", "1")
    out = isolate.run(bench_job(models["fp32"], progress_label="[1/1] fp32.tflite"), timeout=60)
    assert out["ok"] is True
    assert "[1/1] fp32.tflite threads=1 xnnpack=on\n" in capfd.readouterr().err


def test_no_progress_fd_when_progress_is_off(models, private_tmp, monkeypatch, capfd):
    monkeypatch.delenv("EDGEKIT_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "1")
    out = isolate.run(bench_job(models["fp32"], progress_label="[1/1] fp32.tflite"), timeout=60)
    assert out["ok"] is True and "threads=1" not in capfd.readouterr().err


def test_stderr_replaced_by_something_without_a_file(models, private_tmp, monkeypatch):
    import io
    monkeypatch.setenv("EDGEKIT_PROGRESS", "1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    out = isolate.run(bench_job(models["fp32"]), timeout=60)
    assert out["ok"] is True


def test_timeout_report_survives_bytes_that_are_not_utf8(models, private_tmp, monkeypatch, fork):
    (private_tmp / "hangs_on_import.py").write_text(
        "import sys, time\nsys.stderr.buffer.write(b'stuck \\xfe here\\n'); sys.stderr.flush()\ntime.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", str(private_tmp))
    monkeypatch.syspath_prepend(str(private_tmp))
    job = bench_job(models["fp32"], runtime={"name": "x", "version": None, "module": "hangs_on_import"})
    out = isolate.run(job, timeout=12, fork=fork)      # time for the child to start and reach the import, even when busy
    assert out["error"]["kind"] == "timeout" and out["error"]["stderr_tail"] == "stuck \ufffd here"


def test_the_agents_parent_process_does_not_import_numpy():
    """Start-up: the parent (argument parsing, board facts, the runtime list) leaves NumPy to the
    child, or to the fork that infer makes (make perf's cold_start measures what this saves)."""
    import subprocess
    code = ("import sys; import device.cli, device.measure.sysinfo as s; s.collect(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'ai_edge_litert', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_a_forked_infer_child_does_its_work_with_the_parents_numpy(models, private_tmp):
    """infer forks: the result is the same as a spawned child's, and NumPy was imported once, here."""
    import numpy as np
    from PIL import Image

    info = runtime.resolve()
    interp = runtime.make_interpreter(runtime.load_module(info), models["fp32"], 1, False)
    _, h, w, c = (int(d) for d in interp.get_input_details()[0]["shape"])
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(private_tmp / "x.png")
    job = {"job": "infer", "runtime": {"name": info.name, "version": info.version, "module": info.module},
           "threads": 1, "inputs": [str(private_tmp / "x.png")], "labels": None, "top_k": 3, "pixel_scale": None, "pixel_offset": None,
           "manifest": None, "task": None, "threshold": None, "iou": None, "draw": None, "mask_out": None,
           "model_path": models["fp32"], "sha256": None}
    spawned, forked = isolate.run(job, timeout=60), isolate.run(job, timeout=60, fork=True)
    assert spawned["ok"] and forked["ok"], (spawned, forked)
    scores = [[p.get("top_k") or p.get("predictions") or p for p in out["result"]["predictions"]]
              for out in (spawned, forked)]
    assert scores[0] == scores[1] and forked["result"]["task"] == spawned["result"]["task"]
