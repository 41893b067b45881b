"""The whole flow on the emulated aarch64 board, over real SSH: make deploy -> bench -> results.

What only an ARM board can prove: the runtime chosen and installed for aarch64 (from the index,
or from the host's wheelhouse when the board is offline), the board's own Python and NumPy, the
agent's INT8 accuracy equal to the host's, and results marked as emulated. The full flow runs on
trixie (Python 3.13 over Debian's NumPy 2, cp313 wheels); bookworm gets deploy + eval and the
tflite-runtime fallback (which has no Python 3.13 wheels, so trixie refuses it up front).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_SPACE
from tests.e2e.conftest import BUILD_TIMEOUT_S, REPO, SUITE_FACTS, deploy_env, ssh

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


def run_deploy(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "deploy", *args], cwd=REPO, env=deploy_env(home),
                          capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S)
    if ok:
        assert proc.returncode == 0, f"deploy {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def assert_board_facts(doc: dict, board) -> None:
    """The stored result says which OS generation, Python and NumPy the numbers come from."""
    facts, device = SUITE_FACTS[board.suite], doc["device"]
    assert (device["os_version"], device["os_codename"]) == (facts["os_version"], board.suite)
    assert device["python"].startswith("%d.%d." % tuple(facts["py"]))
    assert device["numpy"].split(".")[0] == facts["numpy_major"]


def light_profile(tmp_path: Path, runtime: str = "auto", variants: str = "[]") -> Path:
    """Enough to run the agent and the full eval without minutes of emulated timing."""
    profile = tmp_path / f"light-{runtime}.yaml"
    profile.write_text(f"name: aarch64-light\ndescription: e2e (test)\narch: [aarch64]\n"
                       f"num_threads: [1]\nnum_runs: 5\nwarmup_runs: 1\nruntime: {runtime}\n"
                       f"variants: {variants}\ncooldown: 0\ntimeout: 1200\n")
    return profile


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
    # trixie: the venv sees Debian's NumPy 2 (ai-edge-litert 2.3 works with it), nothing extra
    assert record["runtime"]["numpy"].startswith("2.")
    assert f"board numpy {record['runtime']['numpy']}" in make.stdout + make.stderr

    doc = bench(board_home, board, bundle, tmp_path / "results")
    assert_board_facts(doc, board)
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
    assert record["runtime"]["numpy"].startswith("2.")   # cp313 wheels over the board's NumPy 2
    doc = bench(board_home, offline_board, bundle, tmp_path / "results")
    assert doc["device"]["arch"] == "aarch64" and doc["runtime"]["name"] == "ai_edge_litert"
    assert_board_facts(doc, offline_board)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert by_variant(doc)["int8"]["accuracy"]["top1"] == manifest["variants"]["int8"]["host_top1"]


def test_tflite_runtime_on_trixie_is_refused_up_front(board, board_home, bundle, tmp_path):
    """tflite-runtime 2.14 has no cp313 wheels: one line before anything on the board changes."""
    run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name)
    before = last_deploy_record(board_home, board.name)
    proc = run_deploy(board_home, "push", "--bundle", str(bundle), "--host", board.name,
                      "--profile", str(light_profile(tmp_path, "tflite-runtime")), ok=False)
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if "refused" in line]
    assert len(error) == 1 and "no wheels for Python 3.13" in error[0] and \
        "runtime: ai-edge-litert" in error[0], proc.stderr
    marker = ssh_out(board, board_home, "cat ~/.edgekit/venv/edgekit-runtime")
    assert marker.startswith("ai-edge-litert==")             # the working runtime is untouched
    assert last_deploy_record(board_home, board.name)["ok"] is False and before["ok"] is True


def test_bookworm_deploy_and_eval(bookworm_board, board_home, bundle, tmp_path):
    """The reduced flow on the Pi OS still in the field: deploy, then INT8 eval equal to the host's."""
    run_deploy(board_home, "push", "--bundle", str(bundle), "--host", bookworm_board.name)
    record = last_deploy_record(board_home, bookworm_board.name)
    assert record["runtime"]["runtime"].startswith("ai-edge-litert==")
    assert record["runtime"]["numpy"].startswith("1.24.")     # Debian 12's own NumPy, reused
    results = tmp_path / "results"
    run_deploy(board_home, "bench", "--bundle", str(bundle), "--host", bookworm_board.name,
               "--profile", str(light_profile(tmp_path, variants="[int8]")), "--results", str(results))
    doc = json.loads(sorted((results / bookworm_board.name).glob("*.json"))[-1].read_text())
    assert_board_facts(doc, bookworm_board)
    manifest = json.loads((bundle / "manifest.json").read_text())
    int8 = by_variant(doc)["int8"]["accuracy"]
    assert int8["top1"] == manifest["variants"]["int8"]["host_top1"]
    assert int8["agreement_with_host"] == 1.0


def ssh_out(board, home: Path, command: str) -> str:
    return ssh(board, home, command).stdout.strip()


def test_tflite_runtime_fallback_on_the_board(bookworm_board, board_home, bundle, tmp_path):
    """The fallback runtime (for boards without ai-edge-litert wheels), on real aarch64 code:
    bookworm's Python 3.11 has tflite-runtime wheels, and its NumPy 1.24 suits it."""
    board = bookworm_board
    profile = light_profile(tmp_path, "tflite-runtime")
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


def test_make_search_on_the_emulated_board_labels_its_figures(board, board_home, tmp_path):
    """`make search HOST=<board>`: candidates measured and evaluated by the agent on the aarch64
    board (in a scratch directory), every figure marked emulated, the winner's on-board top-1
    equal to the host's."""
    space = TINY_SPACE
    env = dict(deploy_env(board_home), EDGEKIT_ARTIFACTS=str(tmp_path / "artifacts"),
               EDGEKIT_SEARCH_CACHE=str(tmp_path / "search-cache"), EDGEKIT_QUIET="1")
    make = subprocess.run(["make", "-s", "search", f"HOST={board.name}", "DATASET=digits", "NAME=emu", "TRIALS=3",
                           "EPOCHS=1", "MAX_TRAINED=2", "MAX_RSS_MB=1000", f"SPACE={space}",
                           f"PROFILE={light_profile(tmp_path)}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    assert "(EMULATED: not board latency)" in make.stdout
    lb = json.loads((tmp_path / "artifacts" / "search-emu" / "leaderboard.json").read_text())
    assert lb["board"] == board.name and lb["profile"] == "aarch64-light"
    assert lb["runtime"].startswith("ai-edge-litert==")
    measured = [c for c in lb["candidates"] if c["status"] != "skipped"]     # skipped ladder steps: never measured
    assert measured and all(c["short"]["emulated"] is True for c in measured)
    assert not any("short" in c for c in lb["candidates"] if c["status"] == "skipped")
    trained = [c for c in lb["candidates"] if "train" in c]
    # the default model fits here, so the ladder's smaller steps are skipped: 1 or 2 trainings
    assert 1 <= len(trained) <= 2 and all(c["final"]["emulated"] is True for c in trained)
    win = next(c for c in lb["candidates"] if c["id"] == lb["winner"])
    assert win["final"]["device_top1"] == pytest.approx(win["int8"]["host_top1"], abs=1e-6)
    manifest = json.loads((tmp_path / "artifacts" / "emu" / "manifest.json").read_text())
    assert manifest["model"]["search"]["board"] == board.name
