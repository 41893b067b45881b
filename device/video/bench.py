"""`bench MODEL --source SPEC`: the end-to-end figures of the frame pipeline, one child per thread
count (like the timing runs, so nothing else in the process counts): fps, capture->result latency
p50/p99, the stage split, dropped frames, CPU and RSS. A file is read as fast as it decodes; a
camera or stream for --frames frames (default 300)."""
from __future__ import annotations

import threading
from typing import Optional

from device.errors import AgentError

LIVE_FRAMES = 300       # a camera or a stream never ends by itself


class _Args:
    """The flags open_frames reads, from the job."""

    def __init__(self, job: dict):
        self.source, self.size, self.fps = job["source"], job.get("size"), job.get("fps")
        self.realtime, self.reconnect = bool(job.get("realtime")), 5


def run(job: dict) -> dict:
    """The child's work: the pipeline over the source with the job's thread count, no sinks."""
    from device.contract import inputs
    from device.runtimes import registry as runtime
    from device.serving.predictor import Predictor
    from device.video import command, pipeline
    stop = threading.Event()
    source, items, options = command.open_frames(_Args(job), stop)
    pred = Predictor(job["model_path"], runtime.RuntimeInfo(**job["runtime"]), 1, job["threads"],
                     inputs.load_manifest(job.get("manifest")), None, task=job.get("task"))
    pipeline.check_model(pred)
    frames: Optional[int] = job.get("frames") or (LIVE_FRAMES if source.paced else None)
    settings = pipeline.Settings(k=5, max_frames=frames, paced=source.paced or bool(job.get("realtime")))
    run_ = pipeline.Pipeline(pred, items, settings, [], stop)
    error = run_.run()
    if error is not None:
        raise error
    summary = run_.stats.summary(options.facts)
    if not summary["frames"]:
        raise AgentError(f"{job['source']}: no frame was answered", kind="source")
    return {"model": {}, "end_to_end": dict(summary, threads=job["threads"], task=pred.task.name)}
