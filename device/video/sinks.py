"""Where the pipeline's answers go: JSON lines (one per frame, then the summary) and the annotated
recording. A recording is written under a temporary name and moved into place when it is closed,
so the file at the given path always plays (also after Ctrl-C or SIGTERM) and a failed run
leaves no half-written video."""
from __future__ import annotations

import json
import os
import sys
from typing import IO, Any, Optional

import numpy as np

from device.errors import EXIT_USAGE, AgentError

FOURCC = {".avi": "MJPG"}       # everything else (.mp4, .mov, .m4v, .mkv) as MPEG-4 part 2
DEFAULT_FOURCC = "mp4v"


class JsonLines:
    """--json - (stdout) or --json PATH: one line per frame as it is answered, the summary last."""

    def __init__(self, dest: str):
        self.own = dest != "-"
        try:
            self.out: IO = open(dest, "w", encoding="utf-8") if self.own else sys.stdout
        except OSError as exc:
            raise AgentError(f"cannot write {dest}: {exc.strerror}", EXIT_USAGE, "usage") from None

    def frame(self, record: dict, picture: Any) -> None:
        pass

    def done(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def close(self, summary: dict) -> None:
        self.out.write(json.dumps({"summary": summary}) + "\n")
        self.out.flush()
        if self.own:
            self.out.close()


class Recorder:
    """--record OUT: the annotated frames as a video at the source's frame rate. The first frame
    fixes the size; a frame of another size (a stream that changed resolution) is resized to it."""

    def __init__(self, path: str, fps: Optional[float]):
        from device.sources.live.opencv import cv2_for
        self.cv2 = cv2_for("--record")
        self.path, self.fps = path, fps or 30.0
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise AgentError(f"--record {path}: no such folder {folder}", EXIT_USAGE, "usage")
        stem, ext = os.path.splitext(os.path.basename(path))
        self.ext = ext.lower() or ".mp4"
        self.tmp = os.path.join(folder, f".{stem}.{os.getpid()}.partial{self.ext}")
        self.writer, self.size, self.frames = None, None, 0

    def frame(self, record: dict, picture: Any) -> None:
        if picture is None:
            return
        bgr = self.cv2.cvtColor(np.asarray(picture), self.cv2.COLOR_RGB2BGR)
        if self.writer is None:
            self.size = (bgr.shape[1], bgr.shape[0])
            code = self.cv2.VideoWriter_fourcc(*FOURCC.get(self.ext, DEFAULT_FOURCC))
            self.writer = self.cv2.VideoWriter(self.tmp, code, float(self.fps), self.size)
            if not self.writer.isOpened():
                raise AgentError(f"--record {self.path}: OpenCV cannot write {self.ext} video here", kind="usage",
                                 exit_code=EXIT_USAGE)
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = self.cv2.resize(bgr, self.size, interpolation=self.cv2.INTER_AREA)
        self.writer.write(bgr)
        self.frames += 1

    def done(self, record: dict) -> None:
        pass

    def close(self, summary: dict) -> None:
        """Finish the file (the container's index is written on release) and move it into place."""
        if self.writer is None:
            summary["recorded"] = {"path": None, "frames": 0}
            return
        self.writer.release()
        os.replace(self.tmp, self.path)
        summary["recorded"] = {"path": os.path.abspath(self.path), "frames": self.frames,
                               "size": list(self.size), "fps": self.fps}

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.release()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass
