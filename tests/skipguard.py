"""A pytest plugin: a skipped test fails the session unless tests/skips_allowed.txt allows it.

Why: a skip reads as a pass in a CI log. Core coverage (a required package, a bundle the test can
build itself, "no network" assumed) must run or fail; only machine-dependent skips are allowed,
each with its reason in one place.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

ALLOWED = Path(__file__).with_name("skips_allowed.txt")


def allowed_patterns() -> list:
    out = []
    for line in ALLOWED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split(" -- ", 1)[0].strip())
    return out


class SkipGuard:
    def __init__(self):
        self.patterns = allowed_patterns()
        self.unexpected: list = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            if not any(fnmatch.fnmatch(report.nodeid, p) for p in self.patterns):
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                self.unexpected.append(f"{report.nodeid}: {reason}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if self.unexpected:
            terminalreporter.section("skips outside tests/skips_allowed.txt (fail the run)", red=True)
            for line in self.unexpected:
                terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if self.unexpected and session.exitstatus == 0:
            session.exitstatus = 1


def pytest_configure(config):
    config.pluginmanager.register(SkipGuard(), "edgekit-skipguard")
