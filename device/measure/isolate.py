"""Run one model's job in a child process (a fresh interpreter, or a fork for one-shot commands).

Why: memory figures must not carry over from the previous model, and a TFLite interpreter can
segfault, abort or hang on a malformed model; the parent then reports that model as failed and
goes on. The child (device/measure/child.py) is started with the package's root (a directory or the
agent.pyz file itself) first on sys.path, so it works the same from the repo and from the zipapp.
"""
from __future__ import annotations

import json
import os
import signal
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


def run(job: dict, timeout: Optional[float], fork: bool = False) -> dict:
    """The child's payload ({"ok": True, "result": ...}) or a failure ({"ok": False, "error": {...}}).

    `fork`: start the child as a fork of this process, after importing NumPy here, instead of a
    fresh interpreter. For one-shot commands (infer on a few images) that is
    most of the start-up time; the child is still its own process (a crash or a hang stays one
    line), but its memory figures include what this process had loaded (a few MB of the agent's
    own modules), so bench, which compares memory across models, always spawns."""
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
        start = _fork if fork and hasattr(os, "fork") else _spawn
        returncode, stderr = start(job, timeout, progress_fd)
        if returncode is None:
            return {"ok": False, "error": {"kind": "timeout", "message": f"timed out after {timeout:g} s",
                                           "signal": None, "exit_code": None, "stderr_tail": _tail(stderr)}}
        if returncode < 0:
            name = _signal_name(-returncode)
            return {"ok": False, "error": {"kind": "crash", "message": f"child process died with {name}",
                                           "signal": name, "exit_code": returncode,
                                           "stderr_tail": _tail(stderr)}}
        try:
            with open(out_path) as f:
                payload = json.load(f)
        except (OSError, ValueError):
            payload = None
        if not isinstance(payload, dict) or "ok" not in payload:
            return {"ok": False, "error": {"kind": "crash",
                                           "message": f"child process exited with code {returncode} "
                                                      "without a result",
                                           "signal": None, "exit_code": returncode,
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


def _spawn(job: dict, timeout: Optional[float], progress_fd: Optional[int]) -> tuple[Optional[int], str]:
    """(exit code, negative for a signal, or None on timeout; the child's stderr): a fresh interpreter."""
    import subprocess            # here: a forked infer never spawns, and its start-up is measured

    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The package root goes first on sys.path, ahead of the working directory, so a `device/`
    # folder wherever the user stands can never replace the agent's own code in the child.
    bootstrap = (f"import sys; sys.path.insert(0, {package_root()!r}); "
                 "from device.measure.child import child_main; sys.exit(child_main())")
    proc = subprocess.Popen([sys.executable, "-c", bootstrap], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            pass_fds=() if progress_fd is None else (progress_fd,))
    try:
        _, err = proc.communicate(json.dumps(job).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err.decode(errors="replace")
    return proc.returncode, err.decode(errors="replace")


def _fork(job: dict, timeout: Optional[float], progress_fd: Optional[int]) -> tuple[Optional[int], str]:
    """As _spawn, by os.fork: the child inherits NumPy, imported here first (the runtime is still
    imported in the child, where a broken install's crash or hang stays the child's)."""
    import select
    import time

    import numpy  # noqa: F401  (imported once, here, for the child)
    from device.measure import child, memory

    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                 # the child: never returns into the parent's code
        code = 70
        try:
            os.close(read_end)
            os.dup2(write_end, 2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            # our sys.stdout/err may be wrappers that never reach fds 1 and 2 (a test's capture)
            sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
            sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
            import faulthandler
            if faulthandler.is_enabled():   # its traceback belongs in the child's stderr tail
                faulthandler.enable(file=sys.stderr)
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            child.run_job(dict(job, rss_start_mb=memory.rss_mb()))
            code = 0
        except SystemExit as exc:      # a runtime module that exits on import, as a spawned child would
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)
    os.close(write_end)
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks, timed_out = [], False
    with os.fdopen(read_end, "rb") as err:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([err], [], [], left)
            if not ready:
                continue
            data = os.read(err.fileno(), 65536)
            if not data:            # EOF: the child has exited (or closed stderr)
                break
            chunks.append(data)
    while not timed_out:        # stderr closed: the child is exiting (or closed it and goes on)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() >= deadline:
            timed_out = True
        else:
            time.sleep(0.002)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    stderr = b"".join(chunks).decode(errors="replace")
    return (None if timed_out else os.waitstatus_to_exitcode(status)), stderr
