"""The one result model: build, validate, write and read result documents (device/contract/schema/).

The agent builds a document here; deploy adds its `deploy` block and stores it; reports and
compare read it through the helpers at the bottom. Nothing re-derives a field another part
already wrote: a result's `variant` is written once, by the agent, from the bundle's manifest.
Stdlib only and Python 3.9-compatible: this runs on boards.
"""
from __future__ import annotations

import datetime
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from device import __version__
from device.contract.fileio import atomic_write_text
from device.contract.schema import SCHEMA_ID, validate

RunKey = Tuple[str, int, bool]      # (variant, threads, xnnpack): how runs are matched everywhere


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
    from device.measure.sysinfo import detect_emulation
    return {"hostname": socket.gethostname(), "arch": platform.machine(),
            "emulated": detect_emulation()["emulated"], "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def variant_for(manifest: Optional[dict], model_path: str, sha256: Optional[str] = None) -> str:
    """Which variant a model file is: the manifest's entry with its sha256, else with its file
    name, else the file's own stem (a model measured outside any bundle)."""
    variants = (manifest or {}).get("variants") or {}
    base = os.path.basename(model_path)
    for name, v in variants.items():
        if sha256 and v.get("sha256") == sha256:
            return name
    for name, v in variants.items():
        if v.get("file") == base:
            return name
    return os.path.splitext(base)[0]


def model_result(model: dict, variant: str, status: str = "ok", runs: Optional[list] = None,
                 memory: Optional[dict] = None, accuracy: Optional[dict] = None,
                 warnings: Optional[list] = None, error: Optional[dict] = None, **extra) -> dict:
    """One entry of `results`, with every field the schema requires present (None when unknown)."""
    full_model = {"path": "", "name": "", "sha256": None, "size_bytes": None,
                  "ops_total": None, "ops_delegated": None}
    full_model.update(model)
    entry = {"model": full_model, "variant": variant, "status": status, "runs": runs or [],
             "memory": memory, "accuracy": accuracy, "warnings": warnings or [], "error": error}
    entry.update(extra)
    return entry


def failed_result(model: dict, variant: str, kind: str, message: str, signal: Optional[str] = None) -> dict:
    """The shape of a model that gave no figures (bad file, crash, timeout, lost link)."""
    return model_result(model, variant, "failed",
                        error={"kind": kind, "message": message, "signal": signal})


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


def combine(parts: List[dict], command: str = "bench") -> dict:
    """Several agent documents of one session (one per model) as one: results, warnings and
    errors in order, the first one's device/runtime/settings, the last one's end time."""
    doc = dict(parts[0], command=command, results=[], warnings=[], errors=[])
    for part in parts:
        for key in ("results", "warnings", "errors"):
            doc[key] = doc[key] + part[key]
    doc["finished_utc"] = parts[-1]["finished_utc"]
    return doc


# --- reading: every consumer (deploy's table and budgets, reports, compare) goes through these --

def upgrade(doc: dict) -> dict:
    """An older document in today's shape (migration on read; the file itself is never changed).

    result-v1: the variant of each result lived in `deploy.variants` (model name -> variant),
    or was the file's stem when no deploy block existed."""
    if not isinstance(doc, dict) or doc.get("schema") != "edgekit/result-v1":
        return doc
    doc = json.loads(json.dumps(doc))
    names = (doc.get("deploy") or {}).pop("variants", None) or {}
    for res in doc.get("results") or []:
        if isinstance(res, dict) and isinstance(res.get("model"), dict):
            model = res["model"]
            res["variant"] = names.get(model.get("name")) or \
                os.path.splitext(os.path.basename(str(model.get("path") or model.get("name") or "")))[0]
    doc["schema"] = SCHEMA_ID
    return doc


def load(path: str) -> dict:
    """A stored result, upgraded and validated; ValueError (one line) when it is neither."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    doc = upgrade(doc)
    try:
        validate(doc)
    except ValueError as exc:
        raise ValueError(f"{path} fails the result schema: {exc}") from None
    return doc


def runs(doc: dict) -> Iterator[Tuple[dict, dict]]:
    """(result, run) for every timed setting of every model that succeeded."""
    for res in doc.get("results", []):
        if res.get("status") == "ok":
            for run in res.get("runs", []):
                yield res, run


def run_key(res: dict, run: dict) -> RunKey:
    return res["variant"], int(run["threads"]), bool(run["xnnpack"])


def runtime_of(res: dict, doc: dict) -> Optional[str]:
    """The runtime a result ran on: its own (a bench holding LiteRT and ONNX Runtime rows), else the doc's."""
    return res.get("runtime") or (doc.get("runtime") or {}).get("name")


def run_index(doc: dict) -> Dict[RunKey, Tuple[dict, dict]]:
    return {run_key(res, run): (res, run) for res, run in runs(doc)}


def find_run(doc: dict, variant: str, threads: int, xnnpack: bool) -> Optional[Tuple[dict, dict]]:
    return run_index(doc).get((variant, threads, xnnpack))


def failed(doc: dict) -> List[dict]:
    return [res for res in doc.get("results", []) if res.get("status") != "ok"]


def board_name(doc: dict) -> str:
    """The board as the user named it to deploy (HOST=...), else the hostname the agent saw."""
    return (doc.get("deploy") or {}).get("host") or doc["device"]["hostname"]


def bundle_name(doc: dict) -> str:
    return (doc.get("deploy") or {}).get("bundle") or "?"


def top1(res: dict) -> Optional[float]:
    return (res.get("accuracy") or {}).get("top1")


def peak_rss_mb(res: dict) -> Optional[float]:
    return (res.get("memory") or {}).get("peak_rss_mb")


def thermal_text(info: Optional[dict]) -> str:
    """The hottest thermal zone and the throttling state, from `agent info` facts."""
    if not info:
        return "-"
    temps = info.get("temperature_c") or {}
    hottest = max(temps.values()) if isinstance(temps, dict) and temps else None
    throttled = (info.get("throttling") or {}).get("throttled")
    if hottest is None and throttled is None:
        return "not available"
    text = f"{hottest:.1f} C" if isinstance(hottest, (int, float)) else "n/a"
    return text + ("" if throttled is None else (", THROTTLED" if throttled else ", not throttled"))


def thermal_facts(info_doc: Optional[dict]) -> Optional[dict]:
    """The few `agent info` fields a stored result keeps from before and after a run."""
    if info_doc is None:
        return None
    d = info_doc.get("device", {})
    return {k: d.get(k) for k in ("temperature_c", "throttling", "cpufreq", "load_avg")}


# --- the measured figures, declared once: `make report` shows each as a column, `make compare`
# --- judges each by its gate. A new figure = its schema field, the code that measures it, one entry.

@dataclass(frozen=True)
class Metric:
    key: str
    label: str                       # column header in the report
    get: Callable[[dict, dict], Optional[float]]   # (result, run) -> value, None when not measured
    fmt: str = ".1f"
    per_run: bool = True             # False: one value per model (memory, accuracy), not per setting
    gate: str = ""                   # compare: "latency" (threshold % and Mann-Whitney on the samples),
                                     # "percent" (threshold %), "points" (a drop in percentage points),
                                     # "shown" (listed with its significance, never a regression), "" not compared
    scale: float = 1.0               # shown as value * scale (fractions as percent)
    optional: bool = False           # a report column only when some row has a value (a task model's figure)


def post_p50(result: dict) -> Optional[float]:
    """Median post-processing time (decoding, NMS, mask resizing) over the eval set's predictions:
    a task model's figure beside its invoke time, since NMS on a big head can cost as much."""
    times = sorted(p["postprocess_us"] for p in result.get("predictions") or [] if "postprocess_us" in p)
    if not times:
        return None
    mid = len(times) // 2
    return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2


METRICS: Tuple[Metric, ...] = (
    Metric("top1", "device top-1 %", lambda res, run: top1(res), ".2f", per_run=False, gate="points", scale=100),
    Metric("count", "runs", lambda res, run: run.get("count"), "d"),
    Metric("p50_us", "p50 µs", lambda res, run: run.get("p50_us"), gate="latency"),
    Metric("p90_us", "p90 µs", lambda res, run: run.get("p90_us")),
    Metric("post_p50_us", "post p50 µs", lambda res, run: post_p50(res), per_run=False, optional=True),
    Metric("p99_us", "p99 µs", lambda res, run: run.get("p99_us"), gate="shown"),
    Metric("throughput_ips", "ips", lambda res, run: run.get("throughput_ips"), ".0f"),
    Metric("peak_rss_mb", "peak RSS MB", lambda res, run: peak_rss_mb(res), per_run=False, gate="percent"),
    Metric("model_mb", "model MB", lambda res, run: (res.get("memory") or {}).get("model_mb"), ".2f",
           per_run=False),
)


def metric_text(metric: Metric, res: dict, run: dict, none: str = "–") -> str:
    value = metric.get(res, run)
    return none if value is None else format(value * metric.scale if metric.scale != 1 else value, metric.fmt)
