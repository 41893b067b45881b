"""`--source picamera2`: the Raspberry Pi camera through picamera2 (Pi OS ships it; it is never
required elsewhere: without it, one line and exit 2). RGB frames at --size (default 640x480)."""
from __future__ import annotations

import time
from typing import Iterator

from device.errors import EXIT_USAGE, AgentError
from device.sources.base import Item, Options, Source


def _frames(cam, options: Options) -> Iterator[Item]:
    i = 0
    try:
        while not (options.stop is not None and options.stop.is_set()):
            t0 = time.perf_counter()
            arr = cam.capture_array("main")
            t1 = time.perf_counter()
            yield Item(name=f"picamera2[{i}]", array=arr[..., :3], captured=t1, decode_s=t1 - t0)
            i += 1
    finally:
        cam.stop()
        cam.close()


def open_picamera2(where: list, options: Options) -> Iterator[Item]:
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise AgentError("picamera2: not installed here (Pi OS: apt install python3-picamera2); "
                         "use camera:N for a V4L2 camera", EXIT_USAGE, "usage") from None
    try:
        cam = Picamera2()
    except Exception as exc:
        raise AgentError(f"picamera2: no camera ({' '.join(str(exc).split())})", EXIT_USAGE, "usage") from None
    size = tuple(options.size or (640, 480))
    controls = {"FrameRate": float(options.fps)} if options.fps else {}
    # RGB888 in libcamera's naming is B,G,R in memory; BGR888 gives R,G,B pixels
    cam.configure(cam.create_video_configuration(main={"size": size, "format": "BGR888"}, controls=controls))
    cam.start()
    options.facts["delivered"] = {"width": size[0], "height": size[1], "fps": options.fps}
    options.facts["backend"] = "picamera2"
    return _frames(cam, options)


SOURCE = Source(name="picamera2", open=open_picamera2, frames=True, paced=True)
