"""Fixtures for the reliability suite.

The SSH board (a real sshd on 127.0.0.1), the tiny bundle, the agent and the first deploy are the
deploy suite's own fixtures, imported here (this session gets its own board, so the faults injected
here never disturb tests/deploy). Fuzz seed models are generated with TensorFlow in a child process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import (agent, board, bundle, client_home, first_deploy, session_dir,  # noqa: F401
                                   shared_cache, trusted_board)
from tests.reliability import helpers


@pytest.fixture(scope="session")
def seeds(tmp_path_factory) -> Path:
    """fp32/int8 seeds, out-of-range tensor/buffer index models and a model that fails at invoke()."""
    out = tmp_path_factory.mktemp("fuzz_seeds")
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.make_models", str(out)], cwd=helpers.REPO,
                          env=helpers.python_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture
def quick_profile(tmp_path) -> Path:
    """A profile fast enough for fault tests (the measurement itself is not what is tested)."""
    path = tmp_path / "quick.yaml"
    path.write_text("name: quick\narch: [x86_64, aarch64]\nnum_threads: [1]\nnum_runs: 3\nwarmup_runs: 0\n"
                    "budgets: {min_top1: 0.0}\n")
    return path


@pytest.fixture
def earlier_result(client_home) -> Path:
    """A result already stored for the board, which no failure may touch."""
    results = client_home.parent / "results"
    path = results / "board" / "20260101T000000Z-tiny.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": "edgekit/result-v1", "marker": "earlier"}))
    return results


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if "tests/reliability/" in report.nodeid:
            helpers.OUTCOMES.append((report.nodeid.split("tests/reliability/", 1)[1], outcome, report.duration))


def pytest_sessionfinish(session):
    path = helpers.write_report()
    if path is not None:
        print(f"\nreliability report: {path}")
