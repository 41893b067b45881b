"""`GET /metrics` of `serve`: the Prometheus text exposition format (version 0.0.4), written by hand
because the agent stays stdlib + NumPy + a runtime. One lock guards every counter; a scrape copies
them under it, so a scrape never sees a request counted in one series and not in another.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Optional

# Inference latency buckets in seconds: a small CNN on a Pi answers in 0.1-100 ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: object) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: dict) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}" if pairs else ""


def _rss_bytes() -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.in_flight = 0
        self.switches = {"ok": 0, "failed": 0}
        self.last_switch = 0.0

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1

    def end(self, endpoint: str, status: int) -> None:
        with self.lock:
            self.in_flight -= 1
            key = (endpoint, int(status))
            self.requests[key] = self.requests.get(key, 0) + 1

    def observe(self, seconds: float) -> None:
        with self.lock:
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def switched(self, ok: bool) -> None:
        with self.lock:
            self.switches["ok" if ok else "failed"] += 1
            if ok:
                self.last_switch = time.time()

    def render(self, model: dict) -> str:
        """model: {release, sha256, runtime, version, name} of the model serving right now."""
        with self.lock:
            requests = dict(self.requests)
            buckets, total, count = list(self.buckets), self.latency_sum, self.latency_count
            in_flight, switches, last_switch = self.in_flight, dict(self.switches), self.last_switch
        out = []

        def family(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        def single(name: str, kind: str, text: str, value) -> None:
            family(name, kind, text)
            out.append(f"{name} {value}")

        family("edgekit_requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
        for (endpoint, code), n in sorted(requests.items()):
            out.append(f"edgekit_requests_total{_labels({'endpoint': endpoint, 'code': code})} {n}")
        family("edgekit_inference_seconds", "histogram", "Time in the interpreter's invoke(), per /infer.")
        for bound, n in zip(LATENCY_BUCKETS, buckets):
            out.append(f'edgekit_inference_seconds_bucket{{le="{bound:g}"}} {n}')
        out.append(f'edgekit_inference_seconds_bucket{{le="+Inf"}} {count}')
        out.append(f"edgekit_inference_seconds_sum {total!r}")
        out.append(f"edgekit_inference_seconds_count {count}")
        single("edgekit_requests_in_flight", "gauge", "Requests being handled now (this scrape included).",
               in_flight)
        family("edgekit_model_info", "gauge", "The model serving now (always 1; the labels carry the facts).")
        out.append(f"edgekit_model_info{_labels(model)} 1")
        family("edgekit_model_switches_total", "counter", "Model hand-overs to a new release, by result.")
        for result, n in sorted(switches.items()):
            out.append(f"edgekit_model_switches_total{_labels({'result': result})} {n}")
        single("edgekit_model_last_switch_timestamp_seconds", "gauge",
               "Unix time of the last successful model switch (0: none since start).", repr(last_switch))
        rss = _rss_bytes()
        if rss is not None:
            single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
        single("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.",
               repr(self.started))
        single("edgekit_uptime_seconds", "gauge", "Seconds since the service started.",
               f"{time.time() - self.started:.3f}")
        single("edgekit_process_id", "gauge", "The serving process's pid.", os.getpid())
        return "\n".join(out) + "\n"
