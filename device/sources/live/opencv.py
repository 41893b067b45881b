"""OpenCV for the frame sources that need it: importing it with one clear line when it is
missing, asking a capture for a size and frame rate and reporting what it delivers, and reading
frames (BGR -> RGB) as Items with their capture time and decode time."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Optional

from device.errors import EXIT_USAGE, AgentError
from device.sources.base import Item, Options

# The package's name as deploy's optional-extras table has it (an opt-in extra there: EXTRAS=).
INSTALL = ("make deploy EXTRAS=opencv-python-headless, or pip install opencv-python-headless, or on Pi OS "
           "apt install python3-opencv")
MAX_BAD_READS = 25      # consecutive undecodable frames inside a file before it counts as ended


def cv2_for(what: str) -> Any:
    """The cv2 module, or a usage error saying which source needs it (files, stdin, images: and
    .npy work without it)."""
    import os
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")        # one line per failure is ours to print
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")     # FFmpeg's AV_LOG_QUIET
    try:
        import cv2
    except ImportError:
        raise AgentError(f"{what} needs OpenCV ({INSTALL}); files, stdin, .npy and images: work "
                         "without it", EXIT_USAGE, "usage") from None
    return cv2


def request(cv2: Any, cap: Any, options: Options) -> None:
    """Ask the capture for --size and --fps (a camera may give something else: see delivered)."""
    if options.size:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.size[1])
    if options.fps:
        cap.set(cv2.CAP_PROP_FPS, options.fps)


def delivered(cv2: Any, cap: Any, options: Options) -> None:
    """What the capture says it delivers, into options.facts (the summary reports it)."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    options.facts["delivered"] = {"width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                  "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                                  "fps": round(fps, 3) if fps and fps < 1000 else None}
    options.facts["backend"] = f"opencv {cv2.__version__} {cap.getBackendName()}"


def frames(cv2: Any, cap: Any, name: str, options: Options, wait: Callable[[int], None],
           frame_count: Optional[int] = None) -> Iterator[Item]:
    """Frames until the capture ends (or options.stop). A failed read before frame_count (a file's
    length) is a corrupt frame: skipped and counted, up to MAX_BAD_READS in a row. Where the file
    is is counted by reads, good or bad: FFmpeg's frame position does not move on a frame it
    cannot decode, so after damaged frames it lags and the end would look like more damage."""
    i = bad = 0
    stop = options.stop
    while not (stop is not None and stop.is_set()):
        wait(i)
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        t1 = time.perf_counter()
        if not ok or bgr is None:
            pos = max(i, int(cap.get(cv2.CAP_PROP_POS_FRAMES)))
            if frame_count and pos < frame_count - 1 and bad < MAX_BAD_READS:
                bad += 1
                i += 1
                yield Item(name=f"{name}[{i - 1}]", corrupt=True, captured=t1)
                continue
            return
        bad = 0
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        t2 = time.perf_counter()
        yield Item(name=f"{name}[{i}]", array=rgb, captured=t2, decode_s=t2 - t0)
        i += 1
