"""The skip guard (tests/skipguard.py) in a real pytest run: an unexpected skip fails the session,
an allow-listed one does not, and an xfail is not a skip."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SKIPPING = "import pytest\n\ndef test_a():\n    pytest.skip('needs something')\n"


def run_pytest(tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.skipguard"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=120)


def test_unexpected_skip_fails_the_run(tmp_path):
    (tmp_path / "test_core.py").write_text(SKIPPING)
    proc = run_pytest(tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "test_core.py::test_a: Skipped: needs something" in proc.stdout
    assert "skips outside tests/skips_allowed.txt" in proc.stdout


def test_allowed_skip_and_xfail_pass(tmp_path):
    allowed = tmp_path / "tests" / "device"
    allowed.mkdir(parents=True)
    (allowed / "test_third_party.py").write_text(SKIPPING)
    (tmp_path / "test_x.py").write_text("import pytest\n\n@pytest.mark.xfail(strict=True)\n"
                                        "def test_known_bug():\n    assert False\n")
    proc = run_pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped, 1 xfailed" in proc.stdout


def test_every_allowed_pattern_has_a_reason():
    from tests import skipguard
    lines = [ln for ln in skipguard.ALLOWED.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines and all(" -- " in ln and ln.split(" -- ", 1)[1].strip() for ln in lines)
