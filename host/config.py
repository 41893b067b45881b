"""Defaults for the host pipeline, in one place (the Makefile and CLI only override them)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VERSION = "0.1.0"


@dataclass(frozen=True)
class Defaults:
    dataset: str = "mnist5k"
    split_seed: int = 1234
    seed: int = 42
    # Model: MobileNet-style, see host/model/architecture.py. Sized so that INT8 is < 0.30x of FP32 (fixed
    # per-tensor overhead dominates tiny models) while still training in minutes on a laptop CPU.
    alpha: float = 1.0
    stem_filters: int = 32
    stem_stride: int = 1
    blocks: tuple = ((64, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1))  # (filters, stride)
    kernel: int = 3  # depthwise kernel size
    dropout: float = 0.2
    bn_momentum: float = 0.9  # Keras' 0.99 gave 8-41 % val accuracy on small data
    # Training
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    patience: int = 15  # long enough for the cosine schedule to bring the LR down
    # Conversion
    calibration_samples: int = 300
    variants: tuple = ("fp32", "dynamic", "fp16", "int8")


DEFAULTS = Defaults()
ARTIFACTS = Path(os.environ.get("EDGEKIT_ARTIFACTS", "artifacts"))
RESULTS = Path(os.environ.get("EDGEKIT_RESULTS", "results"))
REPORTS = Path(os.environ.get("EDGEKIT_REPORTS", "reports"))
