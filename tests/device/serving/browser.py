"""Real Chromium for page tests: Debian's `chromium`, driven by Playwright's Python package. The
test session installs it with apt when it is missing (CI starts from a clean machine); the only
allowed skip is a machine without apt (tests/skips_allowed.txt)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
APT = ["-y", "-q", "-o", "DPkg::Lock::Timeout=600", "install", "--no-install-recommends", "chromium"]


def ensure_chromium() -> str:
    """/usr/bin/chromium, installed with apt-get first when it is not there."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if not apt:
        pytest.skip("Chromium is not installed and there is no apt-get to install it")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(sudo + [apt] + APT, capture_output=True, text=True, env=env, timeout=1200)
    if proc.returncode != 0:        # a clean machine's package lists may be missing or stale
        subprocess.run(sudo + [apt, "-q", "update"], capture_output=True, env=env, timeout=600)
        proc = subprocess.run(sudo + [apt] + APT, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0 and os.path.exists(CHROMIUM), f"apt-get install chromium failed: {proc.stderr[-500:]}"
    return CHROMIUM


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Playwright's sync API) for the session."""
    path = ensure_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()
