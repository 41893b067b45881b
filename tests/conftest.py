"""Shared fixtures. `tiny_bundle` is a real bundle made by the real host CLI (digits, 2 epochs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.skipguard"]   # a skip outside tests/skips_allowed.txt fails the run

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("EDGEKIT_QUIET", "1")


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
