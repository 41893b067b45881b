"""`infer -` (paths or .npy arrays on stdin) and `infer --watch DIR`: one JSON line per input."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.device.conftest import REPO, agent_env

pytestmark = pytest.mark.timeout(120)


def _run(args, stdin: bytes):
    return subprocess.run([sys.executable, "-m", "device", "infer", *map(str, args)], input=stdin,
                          capture_output=True, cwd=REPO, env=agent_env(), timeout=60)


def test_paths_on_stdin(bundle, tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.npy"
        np.save(p, bundle["x"][i])
        paths.append(str(p))
    paths.append(str(tmp_path / "missing.png"))
    proc = _run([bundle["model"], "-", "--manifest", bundle["manifest"], "--top_k", "2"],
                ("\n".join(paths) + "\n").encode())
    assert proc.returncode == 1  # the missing file
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["input"] for r in lines] == paths
    for i in range(3):
        assert lines[i]["top_k"][0]["index"] == bundle["pred"][i] and len(lines[i]["top_k"]) == 2
    assert "no such file" in lines[3]["error"]
    assert b"Traceback" not in proc.stderr


def test_npy_stream_on_stdin(bundle):
    buf = io.BytesIO()
    for i in range(5):
        np.save(buf, bundle["x"][i])
    proc = _run([bundle["model"], "-", "--manifest", bundle["manifest"]], buf.getvalue())
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["top_k"][0]["index"] for r in lines] == list(bundle["pred"][:5])


def test_watch_classifies_new_files(bundle, tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    np.save(watched / "old.npy", bundle["x"][0])  # present before the start: skipped
    proc = subprocess.Popen([sys.executable, "-m", "device", "infer", bundle["model"], "--watch", str(watched),
                             "--manifest", bundle["manifest"]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO, env=agent_env(), text=True)
    try:
        deadline = time.monotonic() + 60
        while "watching" not in proc.stderr.readline() and time.monotonic() < deadline:
            pass
        for i in (1, 2):
            np.save(tmp_path / "tmp.npy", bundle["x"][i])
            shutil.move(str(tmp_path / "tmp.npy"), str(watched / f"new{i}.npy"))
        got = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert [os.path.basename(r["input"]) for r in got] == ["new1.npy", "new2.npy"]
    assert [r["top_k"][0]["index"] for r in got] == list(bundle["pred"][1:3])
