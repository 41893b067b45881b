"""TensorFlow's own tf.lite interpreter: the fallback on a workstation, far too heavy for a board."""
from __future__ import annotations

from device.runtimes.base import Runtime

RUNTIME = Runtime(name="tensorflow", package="tensorflow", module="tensorflow.lite.python.interpreter",
                  distributions=("tensorflow", "tensorflow-cpu", "tf-nightly"), aliases=("tf", "tensorflow.lite"))
