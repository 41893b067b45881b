"""Building, validating and writing the result document (device/schema/result-v1.json)."""
from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Optional

from device import __version__
from device.fileio import atomic_write_text
from device.schema import SCHEMA_ID, validate


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_doc(command: str, argv: list, started: str, device_info: Optional[dict] = None,
            runtime_info: Optional[dict] = None, settings: Optional[dict] = None) -> dict:
    device_info = device_info or minimal_device()
    return {
        "schema": SCHEMA_ID,
        "command": command,
        "agent": {"version": __version__, "argv": [str(a) for a in argv]},
        "device": device_info,
        "runtime": runtime_info or {"name": None, "version": None},
        "settings": settings or {},
        "results": [],
        "warnings": [],
        "errors": [],
        "started_utc": started,
        "finished_utc": started,
    }


def minimal_device() -> dict:
    """Device fields when full `info` collection is not wanted (e.g. a usage error)."""
    import platform
    import socket
    from device.sysinfo import detect_emulation
    return {"hostname": socket.gethostname(), "arch": platform.machine(),
            "emulated": detect_emulation()["emulated"], "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def model_result(model: dict, status: str = "ok", runs: Optional[list] = None,
                 memory: Optional[dict] = None, accuracy: Optional[dict] = None,
                 warnings: Optional[list] = None, error: Optional[dict] = None, **extra) -> dict:
    """One entry of `results`, with every field the schema requires present (None when unknown)."""
    full_model = {"path": "", "name": "", "sha256": None, "size_bytes": None,
                  "ops_total": None, "ops_delegated": None}
    full_model.update(model)
    entry = {"model": full_model, "status": status, "runs": runs or [], "memory": memory,
             "accuracy": accuracy, "warnings": warnings or [], "error": error}
    entry.update(extra)
    return entry


def finish(doc: dict) -> dict:
    """Stamp the end time and validate; a schema failure is an agent bug, reported in `errors`."""
    doc["finished_utc"] = utc_now()
    try:
        validate(doc)
    except ValueError as exc:
        doc["errors"].append(f"internal: result does not match {SCHEMA_ID}: {exc}")
    return doc


def write(doc: dict, dest: str) -> None:
    """`-` is stdout; a path is written atomically so a reader never sees half a file."""
    text = json.dumps(doc, indent=1, allow_nan=False)
    if dest == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    atomic_write_text(dest, text + "\n")
