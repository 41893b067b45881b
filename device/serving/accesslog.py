"""`serve --access_log [PATH] --access_log_max_mb N`: one JSON line per request, size-bounded.

Without PATH (the old flag form) every request is logged to stderr, as before. With PATH, lines
go to that file; when it would pass N MB it is renamed to PATH.1 (replacing the older one), so the
log never takes more than about 2 x N MB of a board's SD card.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Optional

STDERR = "-"


class AccessLog:
    def __init__(self, path: Optional[str], max_mb: float):
        self.to_stderr = path == STDERR
        self.path = None if self.to_stderr else path
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.lock = threading.Lock()

    @classmethod
    def from_args(cls, value: Optional[str], max_mb: float) -> Optional["AccessLog"]:
        return cls(value, max_mb) if value else None

    def write(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self.lock:
            try:
                if os.path.exists(self.path) and os.path.getsize(self.path) + len(line) > self.max_bytes:
                    os.replace(self.path, self.path + ".1")
                with open(self.path, "ab") as f:
                    f.write(line)
            except OSError:
                pass           # a full disk must not fail the request the log describes
