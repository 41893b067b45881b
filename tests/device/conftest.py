"""Fixtures for the device agent tests: real models, the agent run as a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_MODELS = os.path.join(os.path.dirname(REPO), "shared", "models")


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """name -> path of the generated test models (fp32, int8, uint8, two_inputs, hang, bundle),
    built once per version of tests/device/models.py and cached (tests/cached_models.py)."""
    from tests.cached_models import device_models
    return device_models()


def agent_env(extra: dict = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra or {})
    return env


class AgentRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def doc(self) -> dict:
        return json.loads(self.stdout)


def run_agent(*args, entry=None, timeout=120, cwd=None, env=None) -> AgentRun:
    """`python -m device ARGS` (or `python agent.pyz ARGS` with entry=pyz path) as a subprocess;
    env adds to (or, with None values, removes from) the agent's environment."""
    cmd = [sys.executable] + ([entry] if entry else ["-m", "device"]) + [str(a) for a in args]
    full_env = {k: v for k, v in agent_env(env).items() if v is not None}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=cwd or REPO)
    return AgentRun(proc)


@pytest.fixture(scope="session")
def agent():
    return run_agent


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyz") / "agent.pyz"
    subprocess.run([sys.executable, "-m", "device.build", str(out)], check=True, cwd=REPO,
                   env=agent_env(), capture_output=True)
    return str(out)


@pytest.fixture(scope="module")
def bundle(models):
    """The generated bundle's INT8 model, manifest, eval images and the host's predictions."""
    import numpy as np

    b = models["bundle"]
    data = np.load(os.path.join(b, "eval.npz"))
    return {"model": os.path.join(b, "int8.tflite"), "manifest": os.path.join(b, "manifest.json"),
            "x": data["x"], "pred": data["pred_int8"]}
