"""Each model runs in its own child process: a hang or a crash is reported and the run goes on."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from device.contract import schema
from tests.device.conftest import REPO, agent_env

pytestmark = pytest.mark.timeout(120)


def test_hang_is_timed_out_and_next_model_runs(models, agent):
    t0 = time.monotonic()
    run = agent("bench", models["hang"], models["int8"], "--timeout", "2", "--num_runs", "3", "--json", "-")
    assert time.monotonic() - t0 < 60
    assert run.code == 1
    doc = run.doc
    schema.validate(doc)
    hang, ok = doc["results"]
    assert hang["status"] == "failed" and hang["error"]["kind"] == "timeout"
    assert "timed out after 2 s" in hang["error"]["message"]
    assert ok["status"] == "ok" and ok["runs"][0]["count"] == 3
    assert "Traceback" not in run.stderr


def test_crashing_child_is_reported_and_next_model_runs(models):
    """The child is killed with a real SIGSEGV while it spins in invoke()."""
    proc = subprocess.Popen([sys.executable, "-m", "device", "bench", models["hang"], models["int8"],
                             "--timeout", "90", "--num_runs", "3", "--json", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=agent_env({"EDGEKIT_PROGRESS": "1"}))
    try:
        # readiness: the child's own progress line, printed right before it loads and invokes the model
        err_lines = []
        for line in proc.stderr:
            err_lines.append(line)
            if "hang.tflite threads=1" in line:
                break
        else:
            raise AssertionError("the child never started the model: " + "".join(err_lines))
        child = [c for c in psutil.Process(proc.pid).children() if any("child_main" in a for a in c.cmdline())]
        assert len(child) == 1, "no child process"
        child[0].send_signal(signal.SIGSEGV)
        out, err = proc.communicate(timeout=60)
        err = "".join(err_lines) + err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    doc = json.loads(out)
    schema.validate(doc)
    crashed, ok = doc["results"]
    assert crashed["status"] == "failed" and crashed["error"]["kind"] == "crash"
    assert crashed["error"]["signal"] == "SIGSEGV"
    assert ok["status"] == "ok"
    assert "Traceback" not in err


def test_each_model_gets_a_fresh_process(models, agent):
    """Same model twice: the second measurement starts from the same baseline, not on top of the first."""
    run = agent("bench", models["fp32"], models["fp32"], "--num_runs", "3", "--json", "-")
    assert run.code == 0, run.stderr
    a, b = (r["memory"] for r in run.doc["results"])
    assert abs(a["rss_imports_mb"] - b["rss_imports_mb"]) < 3
    assert abs(a["peak_rss_mb"] - b["peak_rss_mb"]) < 3
