"""The whole flow on the emulated aarch64 board, over real SSH: make deploy -> bench -> results.

What only an ARM board can prove: the runtime chosen and installed for aarch64 (from the index,
or from the host's wheelhouse when the board is offline), the board's own Python and NumPy, the
agent's INT8 accuracy equal to the host's, and results marked as emulated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import BUILD_TIMEOUT_S, REPO, deploy_env

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S)

DEPLOY_TIMEOUT_S = 900


def _need_deploy() -> None:
    for path in ("deploy/__main__.py", "device/build.py", "tests/deploy/make_bundle.py"):
        if not (REPO / path).exists():
            pytest.skip(f"{path} not present yet")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny real bundle (fp32 + int8, 64 eval images), made in a child process."""
    _need_deploy()
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    proc = subprocess.run([sys.executable, "-m", "tests.deploy.make_bundle", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=deploy_env(out.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def run_deploy(home: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "deploy", *args], cwd=REPO, env=deploy_env(home),
                          capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S)
    assert proc.returncode == 0, f"deploy {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def last_deploy_record(home: Path, host: str) -> dict:
    records = [json.loads(line) for line in (home / "deploy.log").read_text().splitlines()]
    return [r for r in records if r["host"] == host][-1]


def bench(home: Path, board, bundle: Path, results: Path) -> dict:
    run_deploy(home, "bench", "--bundle", str(bundle), "--host", board.name,
               "--results", str(results))
    files = sorted((results / board.name).glob("*.json"))
    assert files, f"no result under {results / board.name}"
    return json.loads(files[-1].read_text())


def by_variant(doc: dict) -> dict:
    return {Path(r["model"]["path"]).stem: r for r in doc["results"]}


def test_make_deploy_then_bench_on_the_board(board, board_home, bundle, tmp_path):
    """`make deploy HOST=<board>` needs nothing but what `make board` recorded."""
    make = subprocess.run(["make", "-s", "deploy", f"HOST={board.name}", f"BUNDLE={bundle}"],
                          cwd=REPO, env=deploy_env(board_home), capture_output=True, text=True,
                          timeout=DEPLOY_TIMEOUT_S)
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-2000:]
    record = last_deploy_record(board_home, board.name)
    assert record["board"]["arch"] == "aarch64"
    assert record["runtime"]["runtime"].startswith("ai-edge-litert==")   # chosen for aarch64
    assert record["runtime"]["via"] == "index"                         # online board

    doc = bench(board_home, board, bundle, tmp_path / "results")
    assert doc["device"]["arch"] == "aarch64"
    assert doc["device"]["hostname"] == board.name
    assert doc["device"]["emulated"] is True                  # never passed off as a real Pi
    assert "qemu" in doc["device"]["emulator"]
    assert doc["runtime"]["name"] == "ai_edge_litert"
    manifest = json.loads((bundle / "manifest.json").read_text())
    results = by_variant(doc)
    for variant in ("int8", "fp32"):
        acc = results[variant]["accuracy"]
        assert acc["top1"] == manifest["variants"][variant]["host_top1"], variant
        assert acc["agreement_with_host"] == 1.0, variant
    # XNNPACK took part of the graph on aarch64 (needs /proc and /sys in the board).
    assert results["int8"]["model"]["ops_delegated"] > 0


def test_redeploy_with_nothing_changed_transfers_nothing(board, board_home, bundle, tmp_path):
    # One fixed agent.pyz for both pushes: device/ may be edited while the tests run.
    agent = tmp_path / "agent.pyz"
    subprocess.run([sys.executable, "-m", "device.build", str(agent)], cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    for _ in range(2):
        run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name,
                   "--agent", str(agent))
    record = last_deploy_record(board_home, board.name)
    assert record["bytes_sent"] == 0 and record["files_sent"] == 0
    assert record["runtime"]["installed"] is False


def test_offline_board_installs_from_the_wheelhouse(offline_board, board_home, bundle, tmp_path):
    run_deploy(board_home, "push", "--bundle", str(bundle), "--host", offline_board.name)
    record = last_deploy_record(board_home, offline_board.name)
    assert record["board"]["online"] is False, record
    assert record["runtime"].get("via") == "wheelhouse", record
    doc = bench(board_home, offline_board, bundle, tmp_path / "results")
    assert doc["device"]["arch"] == "aarch64" and doc["runtime"]["name"] == "ai_edge_litert"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert by_variant(doc)["int8"]["accuracy"]["top1"] == manifest["variants"]["int8"]["host_top1"]


def test_tflite_runtime_fallback_on_the_board(board, board_home, bundle, tmp_path):
    """The fallback runtime (for boards without ai-edge-litert wheels), on real aarch64 code."""
    profile = tmp_path / "fallback.yaml"
    profile.write_text("name: aarch64-fallback\ndescription: tflite-runtime on aarch64 (test)\n"
                       "arch: [aarch64]\nnum_threads: [1]\nnum_runs: 5\nwarmup_runs: 1\n"
                       "runtime: tflite-runtime\ncooldown: 0\ntimeout: 1200\n")
    run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name,
               "--profile", str(profile))
    record = last_deploy_record(board_home, board.name)
    assert record["runtime"]["runtime"].startswith("tflite-runtime==")
    results = tmp_path / "results"
    run_deploy(board_home, "bench", "--bundle", str(bundle), "--host", board.name,
               "--profile", str(profile), "--results", str(results))
    doc = json.loads(sorted((results / board.name).glob("*.json"))[-1].read_text())
    assert doc["device"]["arch"] == "aarch64"
    assert doc["runtime"]["name"] == "tflite_runtime"
    manifest = json.loads((bundle / "manifest.json").read_text())
    # The FP32 graph runs the same float kernels; its top-1 must match the host's exactly.
    fp32 = by_variant(doc)["fp32"]["accuracy"]
    assert fp32["top1"] == manifest["variants"]["fp32"]["host_top1"]
    # INT8 runs on tflite-runtime's builtin kernels (not XNNPACK): rounding may differ on a
    # borderline image, so allow at most one disagreement in 64.
    assert by_variant(doc)["int8"]["accuracy"]["agreement_with_host"] >= 1 - 1 / 64
