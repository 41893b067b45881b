"""Every default of the agent in one place."""
from __future__ import annotations

NUM_THREADS = (1,)
NUM_RUNS = 100
WARMUP_RUNS = 10
MIN_SECS = 0.0
MAX_SAMPLES = 10_000          # raw samples kept per run (reports draw distributions from them)
TIMEOUT_SECS = 300.0          # per model, for the child process
STDERR_TAIL_LINES = 20
RUNTIME_ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")
RANDOM_SEED = 0
TOP_K = 5
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080
SERVE_WORKERS = 2
SERVE_MAX_BODY = 8 * 1024 * 1024
SERVE_TIMEOUT_SECS = 30.0
MAX_IMAGE_PIXELS = 4096 * 4096  # larger images are refused before decoding (memory on a small board)
