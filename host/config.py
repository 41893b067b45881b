"""Defaults for the host pipeline, in one place (the Makefile and CLI only override them), and the
command line's one spelling rule for a flag (`add_flag`)."""
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
    # A thin stem, a full conv for the first block, depthwise convs only where later blocks stride and
    # 1x1 convs elsewhere: the ops INT8 runs slower than FP32 on XNNPACK (depthwise convs on few channels,
    # the 1-channel stem conv) kept few and small, so INT8 p50 is ~0.32x FP32 at the same accuracy
    # (host/model/architecture.py says why).
    stem_filters: int = 16
    stem_stride: int = 1
    blocks: tuple = ((64, 2, "conv"), (128, 1, "pw"), (256, 2), (256, 1, "pw"), (512, 2),
                     (512, 1, "pw"))  # (filters, stride[, kind: sep | pw | conv])
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


def add_flag(parser, flag: str, *old: str, **kwargs) -> None:
    """One option, spelled `flag` (snake_case where the board agent has the same flag, as TFLite's
    benchmark_model does); each older spelling in `old` still parses to the same dest but is not
    shown in --help (kept for one release)."""
    import argparse

    action = parser.add_argument(flag, **kwargs)
    for spelling in old:
        parser.add_argument(spelling, **{**kwargs, "dest": action.dest, "help": argparse.SUPPRESS,
                                         "default": argparse.SUPPRESS})
