"""The agent's defaults outside benchmarking (bench settings: device/contract/params.py)."""
from __future__ import annotations

STDERR_TAIL_LINES = 20
RANDOM_SEED = 0
TOP_K = 5
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080
SERVE_WORKERS = 2
SERVE_MAX_BODY = 8 * 1024 * 1024
SERVE_TIMEOUT_SECS = 30.0
MAX_IMAGE_PIXELS = 4096 * 4096  # larger images are refused before decoding (memory on a small board)
