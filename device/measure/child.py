"""The per-model child process: read a job on stdin (or inherit it, forked), run it, write the
payload to a file.

Kept to json + the job modules: whatever this imports is counted in every model's memory.
"""
from __future__ import annotations

import json
import sys


def child_main() -> int:
    """A spawned child: the job comes on stdin."""
    from device.measure import memory
    rss_start = memory.rss_mb()
    job = json.loads(sys.stdin.read())
    job["rss_start_mb"] = rss_start
    run_job(job)
    return 0


def run_job(job: dict) -> None:
    """Run `job` and write its payload to job["result_path"] (a spawned or a forked child)."""
    try:
        if job["job"] == "profile":   # built on the bench job's timing (device/profiling/profile.py imports jobs)
            from device.profiling.profile import run
        elif job["job"] == "eval":
            from device.measure import task_eval
            run = task_eval.evaluate
        elif job["job"] == "frames":  # bench --source: the frame pipeline end to end
            from device.video.bench import run
        else:
            from device.measure import jobs
            run = {"bench": jobs.bench, "infer": jobs.infer}[job["job"]]
        payload = {"ok": True, "result": run(job)}
    except Exception as exc:  # AgentError carries its kind; anything else is still one line
        from device.errors import AgentError
        kind = exc.kind if isinstance(exc, AgentError) else "internal"
        message = str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"
        payload = {"ok": False, "error": {"kind": kind, "message": " ".join(message.split())[:500],
                                          "signal": None, "exit_code": 0}}
    with open(job["result_path"], "w") as f:
        json.dump(payload, f)
