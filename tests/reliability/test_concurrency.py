"""Two `deploy bench` runs against one board at once: both succeed with separate, complete results
(or one waits for the other); never a mixed, overwritten or half-written file."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from device.contract.schema import validate
from tests.reliability import helpers

pytestmark = pytest.mark.timeout(600)


def test_two_benches_at_once_on_one_board(first_deploy, client_home, trusted_board, bundle, quick_profile):
    cmd = [sys.executable, "-m", "deploy", "bench", "--bundle", str(bundle), "--host", trusted_board,
           "--profile", str(quick_profile)]
    procs = [subprocess.Popen(cmd, cwd=helpers.REPO, env=helpers.python_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=500) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err[-2000:]
    paths = sorted((client_home.parent / "results" / "board").glob("*.json"))
    assert len(paths) == 2
    manifest = json.loads((bundle / "manifest.json").read_text())
    for path in paths:
        doc = json.loads(path.read_text())
        validate(doc)
        assert sorted(r["variant"] for r in doc["results"]) == sorted(manifest["variants"])
        assert all(r["status"] == "ok" and r["runs"] and r["accuracy"] for r in doc["results"])
    assert {str(p) for p in paths} == {line.split("result stored in ")[1].strip()
                                       for out, _ in outs for line in out.splitlines() if "result stored in" in line}
    helpers.count("Concurrency", "parallel benches on one board, each with a complete result", 2)
