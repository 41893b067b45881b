"""`python -m device.build OUT.pyz`: the agent as one file for the board.

The zipapp holds only what the board runs: the device package's modules and the result schema
(no host/ or deploy/ code), and runs as `python3 agent.pyz <command> ...` with the same behaviour
as `python -m device`. Left out: the benchmarks that drive the agent from the workstation
(WORKSTATION_ONLY) and the runtime pins (deploy reads those from device/ and installs them itself).
"""
from __future__ import annotations

import os
import sys
import zipfile

from device.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line

PROG = "device.build"

# Run on the workstation (this builder; the benchmarks that drive an agent for host/perf and
# `make perf`), never on the board.
WORKSTATION_ONLY = ("build.py", "measure/perf_check.py", "serving/load.py")

# The archive's __main__.py (it unpacks the package once so its bytecode can be cached; see there).
ENTRY = "zipmain.py"


def build(out_path: str) -> str:
    """Write the zipapp atomically; returns its path. Sorted entries and fixed dates make the
    archive reproducible, so its sha256 identifies the agent version on a board."""
    package = os.path.dirname(os.path.abspath(__file__))
    out_path = os.path.abspath(out_path)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    files = []
    for root, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, package).replace(os.sep, "/")
            if name.endswith((".py", ".json")) and rel not in WORKSTATION_ONLY and rel != ENTRY:
                files.append((full, os.path.join("device", rel)))
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as raw:
        raw.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for full, arc in [(os.path.join(package, ENTRY), "__main__.py")] + files:
                info = zipfile.ZipInfo(arc.replace(os.sep, "/"), date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    zf.writestr(info, f.read())
    os.chmod(tmp, 0o755)
    os.replace(tmp, out_path)
    return out_path


def main(argv: list = None) -> int:
    """Exit 0 with the archive's path and size, 2 for a wrong command line, 1 when it cannot be written."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print(error_line(PROG, "expected one argument, the archive to write (usage: python -m device.build OUT.pyz)"),
              file=sys.stderr)
        return EXIT_USAGE
    try:
        path = build(argv[0])
    except OSError as exc:
        print(error_line(PROG, f"cannot write {argv[0]}: {exc.strerror}"), file=sys.stderr)
        return EXIT_FAILED
    print(f"{path} ({os.path.getsize(path)} bytes)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
