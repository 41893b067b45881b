"""The shipped forms: agent.pyz behaves like `python -m device`; light runtimes never pull in TensorFlow."""
from __future__ import annotations

import os
import zipfile

import pytest

from device.contract import schema

pytestmark = pytest.mark.timeout(300)


def test_pyz_holds_only_the_agent(pyz):
    names = zipfile.ZipFile(pyz).namelist()
    assert "__main__.py" in names and "device/contract/schema/result-v2.json" in names
    assert not any(n.startswith(("host/", "deploy/", "tests/")) for n in names)
    assert not any(n.endswith(".txt") for n in names)              # deploy installs the runtime pins itself
    for workstation_only in ("build.py", "measure/perf_check.py", "serving/load.py"):
        assert f"device/{workstation_only}" not in names
    for board_side in ("tasks/registry.py", "sources/registry.py", "runtimes/registry.py", "runtimes/litert.py"):
        assert f"device/{board_side}" in names


def test_pyz_runs_every_command_like_the_package(models, agent, pyz, tmp_path):
    """Run from an unrelated directory, so nothing can come from the repo checkout."""
    bundle = models["bundle"]
    for args in (["info"],
                 ["bench", models["int8"], models["hang"], "--num_runs", "3", "--timeout", "3"],
                 ["eval", os.path.join(bundle, "int8.tflite"), os.path.join(bundle, "eval.npz"),
                  "--manifest", os.path.join(bundle, "manifest.json")]):
        a = agent(*args, "--json", "-")
        b = agent(*args, "--json", "-", entry=pyz, cwd=str(tmp_path))
        assert a.code == b.code, b.stderr
        da, db = a.doc, b.doc
        schema.validate(db)
        assert [r["status"] for r in da["results"]] == [r["status"] for r in db["results"]]
        assert [r["model"]["sha256"] for r in da["results"]] == [r["model"]["sha256"] for r in db["results"]]
        if args[0] == "eval":
            assert da["results"][0]["accuracy"]["top1"] == db["results"][0]["accuracy"]["top1"]
        if args[0] == "bench":
            assert db["results"][0]["model"]["ops_delegated"] == da["results"][0]["model"]["ops_delegated"]
            assert db["results"][1]["error"]["kind"] == "timeout"


def test_a_device_folder_in_the_working_directory_is_not_used(models, agent, pyz, tmp_path):
    """The child must run the agent's own code, not a `device/` package where the user stands."""
    decoy = tmp_path / "device"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('decoy device package imported')\n")
    run = agent("bench", models["int8"], "--num_runs", "2", "--json", "-", entry=pyz, cwd=str(tmp_path))
    assert run.code == 0, run.stderr
    assert run.doc["results"][0]["status"] == "ok"


def test_light_runtime_never_imports_tensorflow(models, agent, tmp_path):
    """A poisoned `tensorflow` on the path: any import of it by parent or child would fail the run."""
    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('the agent imported tensorflow')\n")
    import subprocess
    import sys
    from tests.device.conftest import REPO, agent_env
    env = agent_env()
    env["PYTHONPATH"] = os.pathsep.join([str(poison.parent), REPO])
    proc = subprocess.run([sys.executable, "-m", "device", "bench", models["int8"], "--num_runs", "2", "--json", "-"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_tensorflow_runtime_and_missing_runtime(models, agent):
    run = agent("bench", models["int8"], "--runtime", "tensorflow", "--num_runs", "3", "--json", "-")
    assert run.code == 0, run.stderr
    assert run.doc["runtime"]["name"] == "tensorflow"
    assert run.doc["results"][0]["memory"]["peak_rss_mb"] > 100  # TensorFlow's interpreter is heavy
    try:
        import tflite_runtime  # noqa: F401
        pytest.skip("tflite_runtime is installed here")
    except ImportError:
        pass
    run = agent("bench", models["int8"], "--runtime", "tflite_runtime", "--json", "-")
    assert run.code == 2 and "not installed" in run.doc["errors"][0]


def test_the_pyz_unpacks_once_and_imports_with_cached_bytecode(models, agent, pyz, tmp_path):
    """Python caches no bytecode for a zip: the first start unpacks device/ into a private cache
    named by the archive's hash, later starts (and the measuring children) import from there."""
    import hashlib
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache), "PYTHONDONTWRITEBYTECODE": None}
    first = agent("bench", models["int8"], "--num_runs", "2", "--json", "-", entry=pyz, cwd=str(tmp_path), env=env)
    assert first.code == 0, first.stderr
    digest = hashlib.sha256(open(pyz, "rb").read()).hexdigest()[:16]
    folder = cache / "edgekit" / "agent-code" / digest
    assert sorted(p.name for p in (cache / "edgekit" / "agent-code").iterdir()) == [digest]   # no temp left
    assert (folder / "device" / "cli.py").read_bytes() == zipfile.ZipFile(pyz).read("device/cli.py")
    cached = {p.name.split(".")[0] for p in folder.rglob("*.pyc")}
    assert {"cli", "jobs", "child"} <= cached          # the parent's modules and the child's
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    again = agent("info", "--json", "-", entry=pyz, cwd=str(tmp_path), env=env)
    assert again.code == 0 and sorted(p.name for p in (cache / "edgekit" / "agent-code").iterdir()) == [digest]


def test_a_cache_others_can_write_is_not_used(models, agent, pyz, tmp_path):
    """Code imported from a folder another user can write to could be anybody's: run from the zip."""
    root = tmp_path / "cache" / "edgekit" / "agent-code"
    root.mkdir(parents=True)
    os.chmod(root, 0o777)
    run = agent("info", "--json", "-", entry=pyz, cwd=str(tmp_path), env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert run.code == 0, run.stderr
    assert list(root.iterdir()) == []
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    run = agent("info", "--json", "-", entry=pyz, cwd=str(tmp_path), env={"XDG_CACHE_HOME": str(blocked)})
    assert run.code == 0, run.stderr


def _another_version(pyz, path):
    """The same agent as a different archive (another sha256), as the next deploy would ship."""
    import shutil
    shutil.copy(pyz, path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("device/_version_marker.txt", str(path))
    return str(path)


def test_a_new_version_removes_the_old_ones_no_running_agent_holds(models, agent, pyz, tmp_path):
    """Each agent version unpacks once (~1 MB); the first start of a new one removes the others,
    except one a running agent (here a service) still imports from."""
    import hashlib
    import subprocess
    import sys
    from tests.device.conftest import agent_env
    cache = tmp_path / "cache"
    root = cache / "edgekit" / "agent-code"
    env = {"XDG_CACHE_HOME": str(cache), "PYTHONDONTWRITEBYTECODE": None}
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]   # noqa: E731
    v2, v3 = _another_version(pyz, tmp_path / "v2.pyz"), _another_version(pyz, tmp_path / "v3.pyz")
    full_env = {k: v for k, v in agent_env(env).items() if v is not None}
    service = subprocess.Popen([sys.executable, pyz, "serve", models["int8"], "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=full_env, cwd=str(tmp_path))
    try:
        assert " on " in service.stdout.readline()          # serving: it runs from v1's folder
        assert agent("info", "--json", "-", entry=v2, cwd=str(tmp_path), env=env).code == 0
        assert sorted(p.name for p in root.iterdir()) == sorted([digest(pyz), digest(v2)])   # v1 held: kept
    finally:
        service.terminate()
        service.wait(timeout=30)
    assert agent("info", "--json", "-", entry=v3, cwd=str(tmp_path), env=env).code == 0
    assert sorted(p.name for p in root.iterdir()) == [digest(v3)]                          # nobody holds v1, v2
    again = agent("info", "--json", "-", entry=pyz, cwd=str(tmp_path), env=env)          # a rollback: unpacked again
    assert again.code == 0 and sorted(p.name for p in root.iterdir()) == sorted([digest(pyz)])
