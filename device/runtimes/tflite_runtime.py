"""tflite-runtime: the older light wheel; it runs INT8 graphs on the builtin kernels, not XNNPACK."""
from __future__ import annotations

from device.runtimes.base import Runtime

RUNTIME = Runtime(name="tflite_runtime", package="tflite_runtime", module="tflite_runtime.interpreter",
                  distributions=("tflite-runtime",), aliases=("tflite-runtime",),
                  int8_delegation_note="tflite-runtime does not delegate INT8 graphs; "
                                       "install ai-edge-litert for the INT8 speed-up")
