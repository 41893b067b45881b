"""Results brought back from boards: results/<host>/<UTC-timestamp>-<bundle>.json.

Written atomically (temp file, then a hard link that fails if the name exists), so an earlier
result is never overwritten and a reader never sees half a file. Documents that fail the
schema go to results/rejected/<host>/ instead, kept for inspection, never mixed with good ones.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from deploy.settings import results_dir
from device.contract.fileio import safe_name, write_new


def _safe(text: str, limit: int = 80) -> str:
    """A file-name-safe form of `text`; long names are cut and keep a short hash to stay distinct."""
    safe = safe_name(text).strip("._") or "unnamed"   # never hidden, never "." or ".."
    if len(safe) > limit:
        safe = f"{safe[:limit]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return safe


def _write_new(directory: Path, stem: str, data: str) -> Path:
    return write_new(directory, lambda n: f"{stem}.json" if n == 0 else f"{stem}-{n}.json", data.encode("utf-8"))


def stem(bundle: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{_safe(bundle)}"


def save(doc: dict, host: str, bundle: str) -> Path:
    return _write_new(results_dir() / _safe(host), stem(bundle), json.dumps(doc, indent=1))


def save_rejected(raw: str, host: str, bundle: str, reason: str) -> Path:
    """Keep what the board sent (even if it is not JSON) beside the reason it was refused."""
    body = json.dumps({"rejected_because": reason, "raw": raw}, indent=1)
    return _write_new(results_dir() / "rejected" / _safe(host), stem(bundle), body)
