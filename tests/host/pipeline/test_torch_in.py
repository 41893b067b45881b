"""PyTorch in: MODEL=net.py:build_fn WEIGHTS= INPUT= and MODEL=model.pt2, exported to ONNX in the torch
venv and on through the ONNX path. The torch venv is built by scripts/venv-tool.sh (the CPU wheel)."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_host
from tests.host.pipeline.test_onnx_in import onnx2tf  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(900)

NET = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, stride=2, padding=1)
            self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.linear = nn.Linear(8, 10)

        def forward(self, x):
            x = torch.relu(self.depthwise(torch.relu(self.conv(x))))
            return torch.softmax(self.linear(x.mean(dim=(2, 3))), dim=1)

    def build():
        return Net()
""")

MAKE = textwrap.dedent("""
    import sys, numpy as np, torch
    sys.path.insert(0, sys.argv[1])
    import net
    torch.manual_seed(0)
    model = net.build().eval()
    torch.save(model.state_dict(), sys.argv[1] + "/sd.pt")
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 28, 28),)), sys.argv[1] + "/model.pt2")
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    with torch.no_grad():
        y = model(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 255)).argmax(1).numpy()
    np.savez(sys.argv[1] + "/eval.npz", x_test=x, y_test=y)
""")


@pytest.fixture(scope="module")
def torch_venv() -> Path:
    venv = Path(os.environ.get("EDGEKIT_TORCH") or Path.home() / ".cache" / "edgekit" / "torch-venv")
    proc = subprocess.run(["scripts/venv-tool.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1500,
                          env=dict(os.environ, VENV_DIR=str(venv), REQUIREMENTS="requirements-torch.txt",
                                   CHECK="import torch"))
    if proc.returncode != 0:
        pytest.skip(f"the torch venv cannot be built here: {proc.stderr.strip()[-200:]}")
    return venv


@pytest.fixture(scope="module")
def files(torch_venv, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("torch-in")
    (d / "net.py").write_text(NET)
    subprocess.run([str(torch_venv / "bin" / "python"), "-c", MAKE, str(d)], check=True, capture_output=True,
                   timeout=300)
    from PIL import Image
    (d / "calib").mkdir()
    rng = np.random.default_rng(5)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(d / "calib" / f"{i}.png")
    return d


def test_build_fn_with_weights_becomes_a_bundle_that_computes_what_torch_does(files, torch_venv, onnx2tf,
                                                                              tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_TORCH", str(torch_venv))
    monkeypatch.setenv("EDGEKIT_ONNX2TF", str(onnx2tf))
    proc = run_host("quantize", "--model", f"{files}/net.py:build", "--weights", str(files / "sd.pt"),
                    "--input", "1x1x28x28", "--calib", f"folder:{files}/calib", "--eval", f"npz:{files}/eval.npz",
                    "--name", "torchnet", artifacts=tmp_path)
    assert "exported to ONNX" in proc.stdout
    manifest = json.loads((tmp_path / "torchnet" / "manifest.json").read_text())
    v = manifest["variants"]
    assert manifest["origin"]["format"] == "torch" and manifest["fidelity"]["top1_agreement"] == 1.0
    # the eval labels are torch's own answers: the converted FP32 and ORT's FP32 give every one of them
    assert v["fp32"]["host_top1"] == 1.0 and v["ort_fp32"]["host_top1"] == 1.0
    assert v["int8"]["input"]["dtype"] == "int8" and v["int8"]["input"]["shape"] == [1, 28, 28, 1]


def test_a_saved_program_exports_to_onnx_that_ort_runs_like_torch(files, torch_venv, tmp_path, monkeypatch):
    from host.convert.interop import ort_variants, torch_file

    monkeypatch.setenv("EDGEKIT_TORCH", str(torch_venv))
    src = torch_file.IMPORTER.source(files / "model.pt2")
    onnx_src = torch_file.to_onnx(src, None, None, tmp_path)
    assert onnx_src.format == "onnx" and src.format == "torch"
    data = np.load(files / "eval.npz")
    x = data["x_test"].transpose(0, 3, 1, 2).astype(np.float32) / 255
    got = np.concatenate([ort_variants.run(onnx_src.path.read_bytes(), x[i:i + 1]) for i in range(len(x))])
    assert np.array_equal(got.argmax(axis=1), data["y_test"])


def test_without_torch_one_line_names_the_make_target(files, tmp_path):
    env_old = os.environ.get("EDGEKIT_TORCH")
    os.environ["EDGEKIT_TORCH"] = str(tmp_path / "none")
    try:
        proc = run_host("quantize", "--model", str(files / "model.pt2"), "--calib", f"folder:{files}/calib",
                        "--name", "t", artifacts=tmp_path / "a", check=False)
    finally:
        os.environ.pop("EDGEKIT_TORCH") if env_old is None else os.environ.__setitem__("EDGEKIT_TORCH", env_old)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"host: error: PyTorch is not installed for edgekit: `make venv-torch` installs the CPU build into its own "
        f"venv at {tmp_path / 'none'}"]
