"""Malformed .tflite files through the real agent: a clean error or a valid result, never a hang.

Mutations of real models (truncations, byte flips, zero length, spliced chunks) plus hand-made
valid flatbuffers with out-of-range tensor/buffer indices and a model that fails at invoke().
Each batch runs with a good model first and last: both must still be measured.
"""
from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from device.contract.schema import validate
from tests.reliability import helpers

BATCH = 12
MODEL_TIMEOUT_S = 20                       # the agent's own per-model limit (--timeout)
KNOWN_KINDS = {"model_file", "load", "allocate", "input", "invoke", "timeout", "crash", "error"}
FIXED = ("bad_tensor_index.tflite", "bad_buffer_index.tflite", "invoke_fails.tflite")


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "flip_header", "flip_many", "zero", "splice", "flip_tail"])
    b = bytearray(data)
    if kind == "truncate":
        return kind, bytes(b[:rng.randrange(1, len(b))])
    if kind == "zero":
        return kind, b""
    if kind == "splice":
        i, j = sorted(rng.sample(range(len(b)), 2))
        k = rng.randrange(len(b))
        return kind, bytes(b[:k] + b[i:j] + b[k:])
    lo, hi = {"flip": (0, len(b)), "flip_header": (0, min(256, len(b))), "flip_many": (0, len(b)),
              "flip_tail": (len(b) // 2, len(b))}[kind]
    for _ in range(rng.randint(1, 64 if kind == "flip_many" else 4)):
        b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return kind, bytes(b)


def limit_memory():
    """A board has little RAM: a mutated shape must not take the test machine's memory with it."""
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def run_batch(models: list[Path], cwd: Path) -> tuple[subprocess.CompletedProcess | None, float]:
    cmd = [sys.executable, "-m", "device", "bench", *map(str, models), "--num_runs", "3", "--warmup_runs", "0",
           "--min_secs", "0", "--timeout", str(MODEL_TIMEOUT_S), "--json", "-"]
    outer = MODEL_TIMEOUT_S * len(models) + 60
    try:
        return subprocess.run(cmd, cwd=cwd, env=helpers.python_env(), capture_output=True, text=True,
                              timeout=outer, preexec_fn=limit_memory), outer
    except subprocess.TimeoutExpired:
        return None, outer


def check_batch(models: list[Path], kinds: dict[str, str], cwd: Path) -> list[str]:
    """Run one batch and count; returns the problems found (empty when all is well)."""
    area = "Malformed models through the agent"
    proc, outer = run_batch(models, cwd)
    n_cases = len(models) - 2
    helpers.count(area, "cases", n_cases)
    if proc is None:
        helpers.count(area, "hangs (agent did not return)", n_cases)
        return [f"agent hung (> {outer}s) on batch {[m.name for m in models]}"]
    problems = []
    if "Traceback" in proc.stderr or proc.returncode not in (0, 1):
        problems.append(f"exit {proc.returncode}, stderr: {proc.stderr[-800:]}")
    try:
        doc = json.loads(proc.stdout)
        validate(doc)
    except ValueError as e:
        helpers.count(area, "invalid result documents", 1)
        return problems + [f"result JSON unusable ({e}): {proc.stdout[:300]}"]
    names = [r["model"]["name"] for r in doc["results"]]
    if names != [m.name for m in models]:
        problems.append(f"results {names} do not match the models given")
    for r, model in zip(doc["results"], models):
        good = model.name.startswith("good_")
        if r["status"] == "ok":
            if not r["runs"] or not all(run["p50_us"] > 0 for run in r["runs"]):
                problems.append(f"{model.name}: status ok without measurements")
            if not good:
                helpers.count(area, "valid results", 1)
        else:
            err = r["error"] or {}
            if good:
                problems.append(f"good model {model.name} lost in a batch with bad ones: {err}")
                continue
            if err.get("kind") not in KNOWN_KINDS or not err.get("message") or "Traceback" in err["message"]:
                problems.append(f"{model.name} ({kinds.get(model.name)}): unclear error {err}")
            elif err["kind"] == "crash":
                helpers.count(area, "crashes contained (child died, others measured)", 1)
            elif err["kind"] == "timeout":
                helpers.count(area, "hangs contained (child killed at --timeout)", 1)
            else:
                helpers.count(area, "clean errors", 1)
            helpers.count(area + ": error kinds", err.get("kind", "?"), 1)
    for r, model in zip(doc["results"], models):
        if model.name.startswith("good_") and r["status"] == "ok":
            helpers.count(area, "good models measured beside bad ones", 1)
    return problems


@pytest.mark.timeout(1800)
def test_mutated_models_give_clean_errors_or_valid_results(seeds, tmp_path):
    rng = random.Random(20261122)
    for key in ("cases", "clean errors", "valid results", "crashes contained (child died, others measured)",
                "hangs contained (child killed at --timeout)", "hangs (agent did not return)"):
        helpers.count("Malformed models through the agent", key, 0)      # listed even when zero
    seed_bytes = {name: (seeds / f"{name}.tflite").read_bytes() for name in ("fp32", "int8")}
    cases, kinds = [], {}
    for name in FIXED:                                   # the structured cases, always included
        path = tmp_path / name
        path.write_bytes((seeds / name).read_bytes())
        cases.append(path)
        kinds[name] = name.removesuffix(".tflite")
    for i in range(helpers.fuzz_cases()):
        seed = rng.choice(sorted(seed_bytes))
        kind, data = mutate(seed_bytes[seed], rng)
        path = tmp_path / f"case{i:04d}_{seed}_{kind}.tflite"
        path.write_bytes(data)
        cases.append(path)
        kinds[path.name] = kind
    good_first, good_last = tmp_path / "good_fp32.tflite", tmp_path / "good_int8.tflite"
    good_first.write_bytes(seed_bytes["fp32"])
    good_last.write_bytes(seed_bytes["int8"])
    problems = []
    for start in range(0, len(cases), BATCH):
        problems += check_batch([good_first, *cases[start:start + BATCH], good_last], kinds, tmp_path)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name, kind", [("bad_tensor_index.tflite", {"load", "allocate"}),
                                        ("bad_buffer_index.tflite", {"load", "allocate"}),
                                        ("invoke_fails.tflite", {"invoke"})])
def test_structured_bad_models_name_the_failing_step(seeds, name, kind):
    """One line naming the model, exit 1, and the failing step in `error.kind`."""
    proc = helpers.run_py("-m", "device", "bench", str(seeds / name), "--num_runs", "2", "--min_secs", "0",
                          "--json", "-", timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    [result] = json.loads(proc.stdout)["results"]
    assert result["status"] == "failed" and result["error"]["kind"] in kind
    [line] = [l for l in proc.stderr.splitlines() if "error" in l]
    assert name in line


@pytest.mark.timeout(300)
@pytest.mark.parametrize("content", [b"", b"TFL3", b"\x00" * 7, b"not a model at all, just text\n" * 10])
def test_tiny_and_foreign_files_in_eval_and_infer(seeds, tmp_path, content):
    model = tmp_path / "weird.tflite"
    model.write_bytes(content)
    bundle = seeds / "bundle"
    for args in (["eval", str(model), str(bundle / "eval.npz"), "--manifest", str(bundle / "manifest.json")],
                 ["infer", str(model), str(bundle / "eval.npz")]):
        proc = helpers.run_py("-m", "device", *args, "--json", "-", timeout=120)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
        doc = json.loads(proc.stdout)
        validate(doc)
        assert doc["results"][0]["status"] == "failed" and doc["results"][0]["error"]["kind"] == "model_file"


@pytest.mark.timeout(300)
def test_a_model_that_never_returns_is_contained(seeds, tmp_path):
    """invoke() never returns: the child is killed at --timeout, the models around it are measured."""
    models = [tmp_path / "good_fp32.tflite", seeds / "never_returns.tflite", tmp_path / "good_int8.tflite"]
    models[0].write_bytes((seeds / "fp32.tflite").read_bytes())
    models[2].write_bytes((seeds / "int8.tflite").read_bytes())
    proc = helpers.run_py("-m", "device", "bench", *map(str, models), "--num_runs", "2", "--min_secs", "0",
                          "--timeout", "3", "--json", "-", timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    validate(doc)
    assert [r["status"] for r in doc["results"]] == ["ok", "failed", "ok"]
    assert doc["results"][1]["error"]["kind"] == "timeout"
    helpers.count("Malformed models through the agent", "hangs contained (child killed at --timeout)")
