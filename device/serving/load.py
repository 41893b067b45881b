"""Load test for `serve` (a benchmark, not a test), loopback only:
`python -m device.serving.load [MODEL] [--clients 8] [--secs 30] [--min_requests 10000] [--json PATH|-]`.

Starts `python -m device serve MODEL` on 127.0.0.1, runs N concurrent clients posting .npy inputs
until both the time and the request count are reached (bounded by --max_secs), and reports
throughput, client-side p50/p99 latency, errors, and the server's RSS at start and end.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from device.args import Parser
from device.errors import EXIT_FAILED, EXIT_OK, AgentError, error_line
from device.measure.isolate import package_root
from device.measure.perf_check import _default_model

PROG = "device.serving.load"


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 2)
    return 0.0


def run(model: str, clients: int, secs: float, min_requests: int, max_secs: float) -> dict:
    env = dict(os.environ, PYTHONPATH=package_root(), TF_CPP_MIN_LOG_LEVEL="2")
    server = subprocess.Popen([sys.executable, "-m", "device", "serve", model, "--port", "0",
                               "--workers", str(min(clients, os.cpu_count() or 1))],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = server.stdout.readline()
        if "http://" not in line:
            raise AgentError(f"the server did not start: {line.strip() or 'no output'}")
        port = int(line.split("http://", 1)[1].split()[0].rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/info")
        info = json.loads(conn.getresponse().read())
        spec = info["inputs"][0]
        shape = [max(1, d) for d in spec["shape"]]
        dtype = np.dtype(spec["dtype"])
        rng = np.random.default_rng(0)
        arr = rng.random(shape).astype(dtype) if dtype.kind == "f" else \
            rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        buf = io.BytesIO()
        np.save(buf, arr)
        body = buf.getvalue()
        for _ in range(50):  # warm-up
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/infer", body=body)
            conn.getresponse().read()
        rss_start = _rss_mb(server.pid)
        latencies, errors, lock = [], [0], threading.Lock()
        start = time.monotonic()
        stop_at = start + secs
        hard_stop = start + max_secs

        def client():
            local, failed = [], 0
            while True:
                now = time.monotonic()
                with lock:
                    done = len(latencies) + len(local)
                if (now >= stop_at and done >= min_requests) or now >= hard_stop:
                    break
                t0 = time.perf_counter()
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    c.request("POST", "/infer", body=body)
                    resp = c.getresponse()
                    resp.read()
                    c.close()
                    if resp.status != 200:
                        failed += 1
                except OSError:
                    failed += 1
                local.append((time.perf_counter() - t0) * 1e6)
                if len(local) >= 200:
                    with lock:
                        latencies.extend(local)
                    local = []
            with lock:
                latencies.extend(local)
                errors[0] += failed

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        rss_end = _rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    lat = np.asarray(latencies)
    return {"model": model, "clients": clients, "requests": int(lat.size), "errors": errors[0],
            "secs": round(elapsed, 2), "throughput_rps": round(lat.size / elapsed, 1),
            "p50_us": round(float(np.percentile(lat, 50)), 1), "p99_us": round(float(np.percentile(lat, 99)), 1),
            "server_rss_start_mb": rss_start, "server_rss_end_mb": rss_end,
            "server_rss_growth_mb": round(rss_end - rss_start, 2)}


def main(argv: list = None) -> int:
    """Exit 0 with the figures, 2 for a wrong command line or no model, 1 when serving fails."""
    p = Parser(prog="python -m device.serving.load", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--secs", type=float, default=10.0)
    p.add_argument("--min_requests", type=int, default=10000)
    p.add_argument("--max_secs", type=float, default=120.0)
    p.add_argument("--json", metavar="PATH|-")
    try:
        args = p.parse_args(argv)
        figures = run(args.model or _default_model(), args.clients, args.secs, args.min_requests, args.max_secs)
        if args.json and args.json != "-":
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)
    except AgentError as exc:
        print(error_line(PROG, exc), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(error_line(PROG, f"{exc.strerror or exc}"), file=sys.stderr)
        return EXIT_FAILED
    if args.json == "-":
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            print(f"{key:<22} {value}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
