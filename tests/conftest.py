"""Shared fixtures. `tiny_bundle` is a real bundle made by the real host CLI (digits, 2 epochs)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.skipguard"]   # a skip outside tests/skips_allowed.txt fails the run

ROOT = Path(__file__).resolve().parents[1]
# the tests' own small search space (independent of the default one)
TINY_SPACE = ROOT / "tests" / "host" / "fixtures" / "search-space-tiny.yaml"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("EDGEKIT_QUIET", "1")
# A test run started in the background by a shell without job control (`make test &`, nohup) inherits
# SIGINT ignored, and so would every child: the Ctrl-C tests would then interrupt nothing. With a
# handler here, children start with the default disposition and Python's KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_host(*args: str, artifacts: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m host ...` as a user would, with its own artifacts directory."""
    env = dict(os.environ, EDGEKIT_ARTIFACTS=str(artifacts), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "host", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m host {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """artifacts/digits: fp32, dynamic, fp16 and int8 .tflite, manifest.json and eval.npz."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    run_host("train", "--dataset", "digits", "--epochs", "2", artifacts=artifacts)
    run_host("quantize", "--name", "digits", "--calibration-samples", "50", artifacts=artifacts)
    return artifacts / "digits"
