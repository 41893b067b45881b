"""LiteRT (the ai-edge-litert wheel): light, and the only one that hands INT8 graphs to XNNPACK."""
from __future__ import annotations

from device.runtimes.base import Runtime

RUNTIME = Runtime(name="ai_edge_litert", package="ai_edge_litert", module="ai_edge_litert.interpreter",
                  distributions=("ai-edge-litert",), aliases=("litert", "ai-edge-litert"))
