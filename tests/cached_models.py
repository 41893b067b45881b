"""Real test models built once with TensorFlow and kept in a cache directory (per user, in the
system temp dir), so fast tests - and `make mutate`, which re-runs them per mutant - never pay
for TensorFlow. Files are written atomically; a version suffix in each name invalidates them."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / f"edgekit-test-models-{os.getuid()}"


def device_models() -> dict:
    """tests/device/models.build_all's models (fp32, int8, uint8, two_inputs, hang, custom_op,
    invoke_fails, bundle): name -> path."""
    source = Path(__file__).with_name("device") / "models.py"
    key = hashlib.sha256(source.read_bytes()).hexdigest()[:12]   # a change to the builders rebuilds
    root = CACHE / f"device-models-{key}"
    if not (root / "bundle" / "manifest.json").exists():
        from tests.device.models import build_all
        tmp = CACHE / f"device-models-{key}.tmp{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        build_all(str(tmp))
        try:
            os.replace(tmp, root)
        except OSError:
            pass  # another process won the race; its copy is equivalent
    names = ("fp32", "int8", "uint8", "two_inputs", "hang", "custom_op", "invoke_fails")
    out = {n: str(root / f"{n}.tflite") for n in names}
    out["bundle"] = str(root / "bundle")
    return out


def task_models() -> dict:
    """tests/device/task_models.build_all's models (yolo, ssd, segment, movenet, multipose, raw): name -> path."""
    source = Path(__file__).with_name("device") / "task_models.py"
    key = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    root = CACHE / f"task-models-{key}"
    names = ("yolo", "ssd", "segment", "movenet", "multipose", "raw")
    if not (root / "raw.tflite").exists():
        from tests.device.task_models import build_all
        tmp = CACHE / f"task-models-{key}.tmp{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        build_all(str(tmp))
        try:
            os.replace(tmp, root)
        except OSError:
            pass
    return {n: str(root / f"{n}.tflite") for n in names}
