"""Run one model's job in a fresh child process.

Why: memory figures must not carry over from the previous model, and a TFLite interpreter can
segfault, abort or hang on a malformed model; the parent then reports that model as failed and
goes on. The child (device/measure/child.py) is started with the package's root (a directory or the
agent.pyz file itself) first on sys.path, so it works the same from the repo and from the zipapp.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Optional

import device
from device import defaults, report


def package_root() -> str:
    """The directory (or .pyz file) that holds the `device` package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(device.__file__)))


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _tail(text: str, lines: int = defaults.STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip() and "XNNPACK delegate for CPU" not in ln]
    return "\n".join(kept[-lines:])


def run(job: dict, timeout: Optional[float]) -> dict:
    """The child's payload ({"ok": True, "result": ...}) or a failure ({"ok": False, "error": {...}})."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The package root goes first on sys.path, ahead of the working directory, so a `device/`
    # folder wherever the user stands can never replace the agent's own code in the child.
    bootstrap = (f"import sys; sys.path.insert(0, {package_root()!r}); "
                 "from device.measure.child import child_main; sys.exit(child_main())")
    fd, out_path = tempfile.mkstemp(prefix="edgekit-child-", suffix=".json")
    os.close(fd)
    # The child's stderr is kept for the failure report, so its progress lines go to a copy of ours.
    progress_fd = None
    if report.progress_wanted():
        try:
            progress_fd = os.dup(sys.stderr.fileno())
        except (OSError, ValueError, AttributeError):  # stderr replaced by something without a file
            pass
    try:
        job = dict(job, result_path=out_path, progress_fd=progress_fd)
        proc = subprocess.Popen([sys.executable, "-c", bootstrap], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                pass_fds=() if progress_fd is None else (progress_fd,))
        try:
            _, err = proc.communicate(json.dumps(job).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            return {"ok": False, "error": {"kind": "timeout", "message": f"timed out after {timeout:g} s",
                                           "signal": None, "exit_code": None,
                                           "stderr_tail": _tail(err.decode(errors="replace"))}}
        stderr = err.decode(errors="replace")
        if proc.returncode < 0:
            name = _signal_name(-proc.returncode)
            return {"ok": False, "error": {"kind": "crash", "message": f"child process died with {name}",
                                           "signal": name, "exit_code": proc.returncode,
                                           "stderr_tail": _tail(stderr)}}
        try:
            with open(out_path) as f:
                payload = json.load(f)
        except (OSError, ValueError):
            payload = None
        if not isinstance(payload, dict) or "ok" not in payload:
            return {"ok": False, "error": {"kind": "crash",
                                           "message": f"child process exited with code {proc.returncode} "
                                                      "without a result",
                                           "signal": None, "exit_code": proc.returncode,
                                           "stderr_tail": _tail(stderr)}}
        if not payload["ok"]:
            payload["error"].setdefault("stderr_tail", _tail(stderr))
        return payload
    finally:
        if progress_fd is not None:
            os.close(progress_fd)
        try:
            os.unlink(out_path)
        except OSError:
            pass
