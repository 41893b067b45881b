"""Model hand-over for `serve --follow LINK`: the service follows a release link (deploy's
`~/.edgekit/current`) and moves to a new release without dropping a request.

Why polling a symlink: deploy, rollback and a hand-made `ln -sfn` all change the same link with
one rename(2), so the service needs no control channel that could get out of step with the
board's state; a readlink every 0.2 s costs nothing.

A switch: (1) the new model runs once in a fresh child process (a model that segfaults or hangs
the runtime kills the child, not the service), (2) it is loaded here (interpreters allocated)
and answers one inference on a known input (zeros of the input's shape and dtype) with finite
scores, (3) one reference assignment makes it the served model. A request takes that reference
once when it starts, so requests in flight finish on the old model, which is freed after them.
A release that fails the check is remembered and not retried; the old model keeps serving and
the failure is reported in /info, /metrics and the state file (which deploy reads).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from device.contract import inputs
from device.contract.fileio import atomic_write_text
from device.errors import AgentError, one_line
from device.measure import isolate
from device.runtimes import registry as runtime
from device.serving.predictor import Predictor

POLL_SECS = 0.2
CHECK_TIMEOUT_SECS = 120.0


def utc(t: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class Served:
    """One loaded model and where it came from; replaced whole, never changed in place."""
    predictor: Predictor
    release: Optional[str]          # the release directory's name (deploy's release id), if known
    variant: Optional[str]
    since: float = field(default_factory=time.time)

    @property
    def sha256(self) -> str:
        return self.predictor.meta["sha256"]

    def facts(self) -> dict:
        return {"release": self.release, "sha256": self.sha256, "variant": self.variant,
                "served_since_utc": utc(self.since)}


def release_of(model_path: str) -> str:
    return os.path.basename(os.path.dirname(os.path.realpath(model_path)))


def self_check(predictor: Predictor) -> None:
    """One inference on a known input (zeros): the model allocates, runs and gives finite outputs."""
    spec = predictor.in_specs[0]
    tensor = np.zeros([max(1, d) for d in spec["shape"]], dtype=np.dtype(spec["dtype"]))
    outputs, _ = predictor.run(tensor, wait=CHECK_TIMEOUT_SECS)
    if not outputs or not all(np.size(o) and np.all(np.isfinite(o)) for o in outputs):
        raise AgentError("the check inference gave no finite score", kind="check")


def isolated_check(path: str, rt: runtime.RuntimeInfo, threads: int) -> dict:
    """Load and invoke once in a child process first: a crash there must not take the service down.
    One inference, no warm-up, XNNPACK on as the service runs it; returns the child's run figures."""
    job = {"job": "bench", "runtime": {"name": rt.name, "version": rt.version, "module": rt.module},
           "threads": [threads], "xnnpack": [True], "num_runs": 1, "warmup_runs": 0, "min_secs": 0.0,
           "max_samples": 1, "input_files": [], "seed": 0, "model_path": os.path.abspath(path)}
    payload = isolate.run(job, CHECK_TIMEOUT_SECS)
    if not payload["ok"]:
        err = payload["error"]
        raise AgentError(f"{err['kind']}: {err['message']}", kind=err["kind"])
    return payload["result"]["runs"][0]


class Follower:
    """Holds the served model; with a link, a thread moves it to whatever release the link names."""

    def __init__(self, served: Served, load: Callable[[str, Optional[str]], Served],
                 link: Optional[str] = None, state_path: Optional[str] = None,
                 on_switch: Callable[[bool], None] = lambda ok: None, state_extra: Optional[dict] = None):
        self.served = served
        self.load = load
        self.link = link
        self.state_path = state_path
        self.on_switch = on_switch
        self.state_extra = dict(state_extra or {})
        self.error: Optional[dict] = None      # the last failed switch: {release, error, utc}
        self.failed: set = set()
        self.stopped = threading.Event()
        self.write_state()
        self.mark_served()

    def target(self) -> Optional[str]:
        """The release the link names now (None without a link, or when it names nothing)."""
        if not self.link:
            return None
        try:
            return os.path.basename(os.path.realpath(self.link)) if os.path.exists(self.link) else None
        except OSError:
            return None

    def check_once(self) -> None:
        release = self.target()
        if release is None or release == self.served.release or release in self.failed:
            return
        release_dir = os.path.realpath(self.link)
        started = time.monotonic()
        try:
            new = self.load(release_dir, self.served.variant)
        except Exception as exc:   # AgentError or a runtime's own error: one line, keep serving
            self.failed.add(release)
            reason = one_line(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {one_line(exc)}"
            self.error = {"release": release, "error": reason, "utc": utc()}
            sys.stderr.write(f"edgekit-agent: release {release} not served, keeping {self.served.release}: "
                             f"{reason}\n")
            self.on_switch(False)
        else:
            old, self.served = self.served, new      # the switch: one reference assignment
            self.error = None
            self.mark_served()
            print(f"switched {old.release} -> {new.release} ({new.predictor.meta['name']} "
                  f"sha256 {new.sha256[:12]}) in {time.monotonic() - started:.2f}s", flush=True)
            self.on_switch(True)
        self.write_state()

    def run(self) -> None:
        while not self.stopped.wait(POLL_SECS):
            try:
                self.check_once()
            except Exception as exc:   # e.g. the state file on a full disk: keep serving, keep following
                sys.stderr.write(f"edgekit-agent: follow: {type(exc).__name__}: {one_line(exc)}\n")

    def start(self) -> None:
        if self.link:
            threading.Thread(target=self.run, name="edgekit-follow", daemon=True).start()

    def mark_served(self) -> None:
        """<link's dir>/served -> the release serving now: a restart (supervisor, systemd) starts from
        the last good release instead of crash-looping on a `current` that failed its check."""
        if not self.link or not self.served.release:
            return
        home = os.path.dirname(os.path.abspath(self.link))
        release_dir = os.path.dirname(os.path.realpath(self.served.predictor.meta["path"]))
        new = os.path.join(home, "served.new")
        try:
            if os.path.lexists(new):
                os.unlink(new)
            os.symlink(os.path.relpath(release_dir, home), new)
            os.replace(new, os.path.join(home, "served"))
        except OSError as exc:
            sys.stderr.write(f"edgekit-agent: cannot update {home}/served: {exc.strerror}\n")

    def facts(self) -> dict:
        return dict(self.served.facts(), follow=self.link, switch_error=self.error)

    def write_state(self) -> None:
        """What deploy reads on the board: which release this process serves (and why not another)."""
        if not self.state_path:
            return
        state = dict(self.state_extra, pid=os.getpid(), updated_utc=utc(), **self.facts())
        atomic_write_text(self.state_path, json.dumps(state, indent=1))
        try:
            os.chmod(self.state_path, 0o600)       # it may carry the service's token
        except OSError:
            pass


def release_loader(rt: runtime.RuntimeInfo, workers: int, threads: int, labels: Optional[list], **decoding):
    """load(release_dir, variant) -> Served: the same variant from the new release's manifest,
    decoded as the service was told (`decoding`: Predictor's task, threshold, iou)."""
    def load(release_dir: str, variant: Optional[str]) -> Served:
        manifest = inputs.load_manifest(os.path.join(release_dir, "manifest.json"))
        variants = manifest.get("variants") or {}
        if variant not in variants:
            raise AgentError(f"release has no variant {variant!r} ({', '.join(sorted(variants)) or 'none'})",
                             kind="manifest")
        path = os.path.join(release_dir, variants[variant]["file"])
        isolated_check(path, rt, threads)
        predictor = Predictor(path, rt, workers, threads, manifest, labels, **decoding)
        self_check(predictor)
        return Served(predictor, os.path.basename(release_dir), variant)
    return load
