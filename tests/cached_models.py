"""Real test models built once with TensorFlow and kept in a cache directory (per user, in the
system temp dir), so fast tests - and `make mutate`, which re-runs them per mutant - never pay
for TensorFlow. Files are written atomically; a version suffix in each name invalidates them."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / f"edgekit-test-models-{os.getuid()}"


def _built(builder: str, prefix: str, marker: str) -> Path:
    """tests/device/<builder>.py's build_all output, built once per version of that file."""
    source = Path(__file__).with_name("device") / f"{builder}.py"
    key = hashlib.sha256(source.read_bytes()).hexdigest()[:12]   # a change to the builders rebuilds
    root = CACHE / f"{prefix}-{key}"
    if not (root / marker).exists():
        import importlib
        build_all = importlib.import_module(f"tests.device.{builder}").build_all
        tmp = CACHE / f"{prefix}-{key}.tmp{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        build_all(str(tmp))
        try:
            os.replace(tmp, root)
        except OSError:
            pass  # another process won the race; its copy is equivalent
    return root


def device_models() -> dict:
    """tests/device/models.build_all's models (fp32, int8, uint8, two_inputs, hang, custom_op,
    invoke_fails, bundle): name -> path."""
    root = _built("models", "device-models", "bundle/manifest.json")
    names = ("fp32", "int8", "uint8", "two_inputs", "hang", "custom_op", "invoke_fails")
    out = {n: str(root / f"{n}.tflite") for n in names}
    out["bundle"] = str(root / "bundle")
    return out


def task_models() -> dict:
    """tests/device/task_models.build_all's models (yolo, ssd, segment, movenet, multipose, raw): name -> path."""
    root = _built("task_models", "task-models", "raw.tflite")
    return {n: str(root / f"{n}.tflite") for n in ("yolo", "ssd", "segment", "movenet", "multipose", "raw")}
