"""Independent checks of the figures the agent reports: latency statistics, the timed loop, RSS.

Every figure is compared with something computed outside the code under test: statistics with
hand-computed values, sample sums with an outside clock, sample counts with the loop's contract,
RSS with /proc/<pid>/status read by the test. The model is real (a two-layer matmul whose invoke
takes milliseconds, so a unit slip of 1000x cannot hide); it is built once and kept in a cache
file, so these tests also serve as the fast selection for `make mutate`.
"""
from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from device.measure import jobs

from device.measure import memory

from device.runtimes import registry as runtime

from device.measure import stats

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BATCH, WIDTH = 64, 512


def _slow_model() -> tuple:
    """(path, W1, W2): y = relu(x @ W1) @ W2 for x of shape (64, 512); ~30 M MACs per invoke."""
    cache = os.path.join(tempfile.gettempdir(), f"edgekit-test-models-{os.getuid()}")
    path = os.path.join(cache, "matmul64x512-v1.tflite")
    wpath = path + ".weights.npz"
    if not (os.path.exists(path) and os.path.exists(wpath)):
        os.makedirs(cache, exist_ok=True)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        rng = np.random.default_rng(5)
        w1 = rng.normal(0, 0.05, (WIDTH, WIDTH)).astype(np.float32)
        w2 = rng.normal(0, 0.05, (WIDTH, WIDTH)).astype(np.float32)

        @tf.function(input_signature=[tf.TensorSpec([BATCH, WIDTH], tf.float32)])
        def f(x):
            return tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)

        blob = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
        tmp = path + f".tmp{os.getpid()}"
        np.savez(wpath + f".tmp{os.getpid()}.npz", w1=w1, w2=w2)
        os.replace(wpath + f".tmp{os.getpid()}.npz", wpath)
        with open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    w = np.load(wpath)
    return path, w["w1"], w["w2"]


class Counting:
    """A real interpreter whose invoke() calls are counted (the workload stays the real one)."""

    def __init__(self, interp):
        self.interp, self.calls = interp, 0

    def invoke(self):
        self.calls += 1
        self.interp.invoke()

    def __getattr__(self, name):
        return getattr(self.interp, name)


@pytest.fixture(scope="module")
def slow():
    path, w1, w2 = _slow_model()
    module = runtime.load_module(runtime.resolve())
    interp = runtime.make_interpreter(module, path, 1, True)
    interp.allocate_tensors()
    return {"interp": interp, "w1": w1, "w2": w2}


def _spec(**kw) -> dict:
    spec = {"num_runs": 5, "warmup_runs": 0, "min_secs": 0.0, "max_samples": 10000}
    spec.update(kw)
    return spec


def _feed(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (BATCH, WIDTH)).astype(np.float32)


# --- statistics: hand-computed values --------------------------------------------------------

def test_summarize_matches_hand_computed_values():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    # linear interpolation between order statistics: p = x[k] + f * (x[k+1] - x[k]), k + f = q * (n - 1)
    assert s == {"count": 5, "mean_us": 22.0, "std_us": 39.013, "min_us": 1.0, "p50_us": 3.0,
                 "p90_us": 61.6, "p95_us": 80.8, "p99_us": 96.16, "max_us": 100.0,
                 "throughput_ips": 45454.545}
    assert s["std_us"] == round(math.sqrt(sum((x - 22.0) ** 2 for x in [1, 2, 3, 4, 100]) / 5), 3)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_summarize_edges():
    assert stats.summarize([]) == {"count": 0}
    one = stats.summarize([1.23456])
    assert one["count"] == 1 and one["p50_us"] == one["min_us"] == one["max_us"] == one["mean_us"] == 1.235
    assert one["std_us"] == 0.0 and one["throughput_ips"] == round(1e6 / 1.23456, 3)
    assert stats.summarize([0.0, 0.0])["throughput_ips"] is None
    assert stats.summarize([0.5])["throughput_ips"] == 2e6  # sub-microsecond invokes still count
    inf = stats.summarize([math.inf])  # never a non-finite number in the JSON
    assert inf["mean_us"] == 0.0 and inf["std_us"] == 0.0 and inf["max_us"] == 0.0
    assert stats.summarize([-1.0])["throughput_ips"] is None


# --- the timed loop --------------------------------------------------------------------------

def test_time_runs_counts_follow_num_runs_and_max_samples(slow):
    c = Counting(slow["interp"])
    assert len(jobs._time_runs(c, 4, 0.0, 100)) == 4 and c.calls == 4
    c = Counting(slow["interp"])
    assert len(jobs._time_runs(c, 50, 0.0, 3)) == 3 and c.calls == 3
    c = Counting(slow["interp"])
    assert len(jobs._time_runs(c, 1, 0.0, 1)) == 1 and c.calls == 1
    c = Counting(slow["interp"])
    assert len(jobs._time_runs(c, 1, 5.0, 2)) == 2, "max_samples caps even a min_secs run"


def test_time_runs_honours_min_secs_against_an_outside_clock(slow):
    c = Counting(slow["interp"])
    t0 = time.perf_counter()
    samples = jobs._time_runs(c, 1, 0.25, 10 ** 6)
    wall = time.perf_counter() - t0
    assert len(samples) == c.calls > 1
    # the samples cover most of min_secs (the rest is loop overhead and preemption between invokes)
    assert sum(samples) / 1e9 >= 0.25 * 0.5, "the timed samples must cover min_secs"
    assert wall >= 0.25 and sum(samples) / 1e9 <= wall
    assert wall <= 0.25 + 3 * max(samples) / 1e9 + 1.0, "the loop stops soon after min_secs"


def test_warm_up_runs_all_but_times_at_most_keep(slow):
    c = Counting(slow["interp"])
    assert len(jobs._warm_up(c, 5, 3)) == 3 and c.calls == 5
    c = Counting(slow["interp"])
    assert len(jobs._warm_up(c, 2, 10)) == 2 and c.calls == 2
    c = Counting(slow["interp"])
    assert jobs._warm_up(c, 0, 10) == [] and c.calls == 0
    c = Counting(slow["interp"])
    assert len(jobs._warm_up(c, 1, 10)) == 1 and c.calls == 1


class StepClock:
    """A clock that advances exactly `step` ns per reading: the loop's arithmetic, checked exactly."""

    def __init__(self, step: int):
        self.t, self.step = 10 ** 12, step

    def __call__(self) -> int:
        self.t += self.step
        return self.t


class Noop:
    calls = 0

    def invoke(self):
        self.calls += 1

    def get_input_details(self):
        return []


def test_time_runs_deadline_is_exact(monkeypatch):
    """deadline = start + min_secs in ns; the loop stops at the first sample ending at or after it."""
    monkeypatch.setattr(jobs, "_clock", StepClock(1000))
    n = Noop()
    samples = jobs._time_runs(n, 1, 1.0, 10 ** 7)
    # readings: deadline at t0+1000 ns... each sample takes two readings (2000 ns): t1 = start + 2000 k
    assert len(samples) == n.calls == 500_000 and set(samples) == {1000}


def test_measure_units_are_exact(monkeypatch):
    """ns -> µs conversion and rounding for first, warm-up and timed runs on an exact clock."""
    monkeypatch.setattr(jobs, "_clock", StepClock(1_234_567))
    monkeypatch.setattr(jobs.runtime, "invoke", lambda interp: interp.invoke())
    r = jobs._measure(Noop(), [], _spec(num_runs=3, warmup_runs=2))
    assert r["first_us"] == 1234.567
    assert r["samples_us"] == [1234.567] * 3 and r["p50_us"] == 1234.567
    assert r["warmup"]["mean_us"] == 1234.567 and r["warmup"]["count"] == 2


def test_measure_microseconds_against_an_outside_clock(slow):
    c = Counting(slow["interp"])
    x = _feed(1)
    t0 = time.perf_counter()
    r = jobs._measure(c, [x], _spec(num_runs=12, warmup_runs=3, max_samples=2))
    wall_us = (time.perf_counter() - t0) * 1e6
    # counts: first + 3 warm-up (2 timed) + 12 runs capped at max_samples=2
    assert c.calls == 1 + 3 + 2
    assert r["warmup"]["count"] == 2 and r["count"] == len(r["samples_us"]) == 2
    r = jobs._measure(c, [x], _spec(num_runs=12, warmup_runs=3))
    assert r["count"] == len(r["samples_us"]) == 12 and r["warmup"]["count"] == 3
    t0 = time.perf_counter()
    r = jobs._measure(c, [x], _spec(num_runs=8))
    wall_us = (time.perf_counter() - t0) * 1e6
    total = sum(r["samples_us"]) + r["first_us"]
    assert 0.2 * wall_us <= total <= wall_us, f"samples {total:.0f} us vs outside clock {wall_us:.0f} us"
    assert all(s >= 100.0 for s in r["samples_us"]), "a ~ms invoke reported in µs is >= 100"
    assert r["mean_us"] == stats.summarize(r["samples_us"])["mean_us"]
    assert r["samples_us"] == [round(s, 3) for s in r["samples_us"]]
    assert 0 < r["first_us"] < wall_us and r["first_us"] == round(r["first_us"], 3)


def test_measure_warmup_in_microseconds(slow):
    c = Counting(slow["interp"])
    r = jobs._measure(c, [_feed(2)], _spec(num_runs=4, warmup_runs=4))
    ratio = r["warmup"]["p50_us"] / r["p50_us"]
    assert 0.01 < ratio < 100, f"warm-up and timed runs are in the same unit (ratio {ratio:.3g})"  # load-proof


def test_measure_feeds_the_inputs(slow):
    interp = slow["interp"]
    x = _feed(3)
    jobs._measure(interp, [x], _spec(num_runs=1))
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    want = np.maximum(x @ slow["w1"], 0) @ slow["w2"]
    np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-3)


def test_min_secs_through_the_agent_cli(tmp_path):
    """The sum of timed samples covers --min_secs and fits in the child's lifetime."""
    import json
    path, _, _ = _slow_model()
    out = tmp_path / "r.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "device", "bench", path, "--num_runs", "1", "--min_secs", "0.4",
                           "--warmup_runs", "0", "--num_threads", "1", "--json", str(out)],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
                          timeout=120)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    runs = [r for m in json.loads(out.read_text())["results"] for r in m.get("runs", [])]
    assert runs
    for r in runs:
        total_s = sum(r["samples_us"]) / 1e6
        assert 0.4 * 0.5 <= total_s <= wall, (total_s, wall)
        assert r["count"] == len(r["samples_us"]) > 1


# --- memory ----------------------------------------------------------------------------------

def _proc_kb(pid, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def test_rss_against_proc_status():
    block = np.ones(40 * 1024 * 1024 // 8)  # 40 MB touched
    before = _proc_kb("self", "VmRSS") / 1024
    got = memory.rss_mb()
    after = _proc_kb("self", "VmRSS") / 1024
    assert min(before, after) - 0.02 <= got <= max(before, after) + 0.02
    assert got == round(got, 2)
    hwm = memory.peak_rss_mb()
    assert hwm == round(_proc_kb("self", "VmHWM") / 1024, 2) and hwm >= got
    del block


def test_peak_falls_back_to_getrusage(monkeypatch):
    assert memory._status_kb("NoSuchField") is None
    monkeypatch.setattr(memory, "_status_kb", lambda field: None)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert memory.peak_rss_mb() == round(kb / 1024.0, 2)
    assert memory.rss_mb() is None
    monkeypatch.setattr(sys, "platform", "darwin")  # ru_maxrss is in bytes there

    class Usage:
        ru_maxrss = 2_000_000_000 + 1023  # bytes

    monkeypatch.setattr(resource, "getrusage", lambda who: Usage)
    assert memory.peak_rss_mb() == round(1_953_125 / 1024.0, 2) == 1907.35
    Usage.ru_maxrss = 5 * 1024 + 1023  # whole kB only: 5 kB, not 5.999 kB
    assert memory.peak_rss_mb() == 0.0


def test_rss_of_a_child_read_from_outside():
    """The child's peak is its own VmHWM, not ru_maxrss: after fork/exec Linux carries the parent's
    high-water mark into ru_maxrss, so this test makes the parent (this process) big first."""
    ballast = np.ones(300 * 2**20 // 8)  # noqa: F841  (kept alive during the child's life)
    assert memory.peak_rss_mb() >= memory.rss_mb() >= 300  # ours covers the ballast
    code = ("import sys, numpy as np; from device.measure import memory; b = np.ones(60 * 2**20 // 8); "
            "print(memory.rss_mb(), memory.peak_rss_mb(), flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        rss, peak = map(float, proc.stdout.readline().split())  # the child's readiness line
        outside_rss = _proc_kb(proc.pid, "VmRSS") / 1024
        outside_hwm = _proc_kb(proc.pid, "VmHWM") / 1024
        assert rss >= 60 and abs(rss - outside_rss) < 1.0
        assert abs(peak - outside_hwm) < 1.0
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
