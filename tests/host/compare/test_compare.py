"""`make compare` decisions on real results: each gate (latency + noise filter, memory, accuracy sign)
pinned by a pair of documents the real device agent wrote.

The agent's documents are measured once per version of the agent's code and model bytes and kept in
a cache file (so `make mutate` can re-run these tests per mutant in seconds); nothing is hand-edited
except where a test says so (splitting one real run in two, putting an eval's accuracy into the
bench document as `make bench` does).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from host.compare import results as cmp
from tests.conftest import ROOT

CACHE = Path(tempfile.gettempdir()) / f"edgekit-test-models-{os.getuid()}"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def _dense_model(name: str, width: int, depth: int) -> Path:
    """fp32.tflite: `depth` (width x width) matmuls on a (16, width) input, built once and cached."""
    path = CACHE / f"dense-{name}-{width}x{depth}-v1" / "fp32.tflite"
    if not path.exists():
        tf = _tf()
        rng = np.random.default_rng(width)
        ws = [rng.normal(0, 1 / np.sqrt(width), (width, width)).astype(np.float32) for _ in range(depth)]

        @tf.function(input_signature=[tf.TensorSpec([16, width], tf.float32)])
        def f(x):
            for w in ws:
                x = tf.nn.relu(tf.matmul(x, w))
            return x

        blob = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return path


def _test_bundle() -> Path:
    """The device tests' generated bundle (int8 CNN, manifest, eval.npz with host predictions)."""
    from tests.cached_models import device_models
    return Path(device_models()["bundle"])


def _agent_key(*parts) -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "device").rglob("*.py")):
        h.update(p.read_bytes())
    for part in parts:
        h.update(Path(part).read_bytes() if isinstance(part, Path) else str(part).encode())
    return h.hexdigest()[:16]


def agent(*args, cache_as: str, inputs: tuple = ()) -> dict:
    """The real agent's JSON document for `python -m device ARGS`, cached per agent code + inputs."""
    key = _agent_key(*inputs, *args)
    out = CACHE / "docs" / f"{cache_as}-{key}.json"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        proc = subprocess.run([sys.executable, "-m", "device", *map(str, args), "--json", str(tmp)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        os.replace(tmp, out)
    return json.loads(out.read_text())


def bench(model: Path, tag: str, runs: int = 150, threads: str = "1", *extra) -> dict:
    return agent("bench", model, "--num_runs", runs, "--warmup_runs", 10, "--num_threads", threads, *extra,
                 cache_as=f"bench-{tag}", inputs=(model,))


def write(tmp_path: Path, name: str, doc: dict) -> str:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def with_accuracy(bench_doc: dict, eval_doc: dict) -> dict:
    """What `make bench` stores: the bench entry's `accuracy` filled from the agent's eval."""
    doc = copy.deepcopy(bench_doc)
    doc["results"][0]["accuracy"] = eval_doc["results"][0]["accuracy"]
    return doc


@pytest.fixture(scope="module")
def light():
    return _dense_model("light", 64, 1)


@pytest.fixture(scope="module")
def heavy():
    return _dense_model("heavy", 512, 3)


@pytest.fixture(scope="module")
def big():
    """~48 MB of weights: a peak-RSS increase far beyond 5 %."""
    return _dense_model("big", 2048, 3)


def verdicts(deltas, metric):
    return [d for d in deltas if d.metric == metric]


# --- latency gate + noise filter --------------------------------------------------------------

def test_real_slowdown_is_a_regression(light, heavy, tmp_path, capsys):
    a, b = bench(light, "light"), bench(heavy, "heavy")
    deltas = cmp.compare(a, b)
    p50 = verdicts(deltas, "p50_us")[0]
    assert p50.regression and p50.significant and p50.change_pct > 100
    assert p50.a == a["results"][0]["runs"][0]["p50_us"] and p50.b == b["results"][0]["runs"][0]["p50_us"]
    p99 = verdicts(deltas, "p99_us")[0]
    assert p99.significant and not p99.regression, "only p50 gates; p99 is shown"
    assert p50.key == "fp32 t=1 xnnpack=on"
    assert cmp.compare_main(write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and " regression(s) beyond the threshold (5 % latency/memory, 0.5 pp accuracy)" in out
    # the faster direction is a change, not a regression
    back = verdicts(cmp.compare(b, a), "p50_us")[0]
    assert back.significant and not back.regression and back.change_pct < -50
    assert cmp.compare_main(write(tmp_path, "b2.json", b), write(tmp_path, "a2.json", a)) == 0
    out = capsys.readouterr().out
    assert "changed" in out and "no regression beyond the noise and the threshold" in out


def measured_twice(model: Path, tag: str, chunks: int = 6, runs: int = 60) -> tuple:
    """The same model measured as A and as B, in alternating chunks (A B A B ...), so a drift of
    this shared machine over the minute falls on both: A/B tests on a noisy machine interleave."""
    docs = [bench(model, f"{tag}-{i}", runs=runs) for i in range(chunks)]

    def joined(parts: list) -> dict:
        doc = copy.deepcopy(parts[0])
        run = doc["results"][0]["runs"][0]
        run["samples_us"] = [x for d in parts for x in d["results"][0]["runs"][0]["samples_us"]]
        run["count"] = len(run["samples_us"])
        run["p50_us"], run["p99_us"] = (float(np.percentile(run["samples_us"], q)) for q in (50, 99))
        return doc
    return joined(docs[0::2]), joined(docs[1::2])


def test_same_model_measured_twice_is_no_regression(heavy, tmp_path, capsys):
    a, b = measured_twice(heavy, "heavy-twice")
    assert a["started_utc"] != b["started_utc"], "two separate measurements"
    assert not [d for d in cmp.compare(a, b) if d.regression]
    assert cmp.compare_main(write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)) == 0
    assert "no regression beyond the noise and the threshold" in capsys.readouterr().out


def test_noise_filter_keeps_an_unchanged_pair_from_failing(heavy):
    """One real run split in two (same distribution by construction), with the slower half as B:
    with a 0 % threshold only the Mann-Whitney filter stands between this pair and a false alarm."""
    doc = bench(heavy, "heavy-noise", runs=400)
    samples = doc["results"][0]["runs"][0]["samples_us"]
    halves = [samples[0::2], samples[1::2]]
    halves.sort(key=lambda s: float(np.percentile(s, 50)))
    a, b = copy.deepcopy(doc), copy.deepcopy(doc)
    for d, s in ((a, halves[0]), (b, halves[1])):
        run = d["results"][0]["runs"][0]
        run["samples_us"], run["p50_us"], run["p99_us"] = s, float(np.percentile(s, 50)), float(np.percentile(s, 99))
    p = cmp.mann_whitney_p(halves[0], halves[1])
    p50 = verdicts(cmp.compare(a, b, threshold_pct=0.0), "p50_us")[0]
    assert p50.change_pct >= 0
    assert p >= cmp.ALPHA and not p50.significant and not p50.regression, p


def test_mann_whitney_needs_five_samples_each():
    assert cmp.mann_whitney_p([1, 2, 3, 4], [10, 20, 30, 40, 50]) == 1.0
    assert cmp.mann_whitney_p([1, 2, 3, 4, 5], [10, 20, 30, 40]) == 1.0
    assert cmp.mann_whitney_p([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) < cmp.ALPHA
    assert cmp.mann_whitney_p([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0


def test_threshold_applies_to_a_significant_change(heavy):
    """A doubled latency is flagged at 5 % and not at 200 %."""
    a = bench(heavy, "heavy")
    b = copy.deepcopy(a)
    run = b["results"][0]["runs"][0]
    run["samples_us"] = [s * 2 for s in run["samples_us"]]   # B is A slowed down exactly 2x
    run["p50_us"], run["p99_us"] = run["p50_us"] * 2, run["p99_us"] * 2
    assert verdicts(cmp.compare(a, b), "p50_us")[0].regression
    d = verdicts(cmp.compare(a, b, threshold_pct=100.0), "p50_us")[0]
    assert d.significant and d.change_pct == pytest.approx(100.0) and not d.regression
    assert verdicts(cmp.compare(a, b, threshold_pct=99.0), "p50_us")[0].regression


# --- memory gate ------------------------------------------------------------------------------

def test_higher_peak_rss_is_a_regression(light, big, tmp_path, capsys):
    a, b = bench(light, "light", runs=20), bench(big, "big", runs=20)
    ma, mb = a["results"][0]["memory"]["peak_rss_mb"], b["results"][0]["memory"]["peak_rss_mb"]
    assert mb > ma * 1.2, (ma, mb)
    mem = verdicts(cmp.compare(a, b), "peak_rss_mb")
    assert len(mem) == 1 and mem[0].regression and mem[0].significant
    assert mem[0].change_pct == pytest.approx(100 * (mb - ma) / ma)
    assert (mem[0].a, mem[0].b) == (ma, mb)
    d = verdicts(cmp.compare(b, a), "peak_rss_mb")[0]
    assert d.significant and not d.regression, "less memory is not a regression"
    assert not verdicts(cmp.compare(a, b, threshold_pct=1000.0), "peak_rss_mb")[0].regression


def test_memory_and_accuracy_are_judged_once_per_variant(heavy):
    a = bench(heavy, "heavy-t12", runs=20, threads="1,2")
    deltas = cmp.compare(a, a)
    assert len(verdicts(deltas, "p50_us")) == 2
    mem = verdicts(deltas, "peak_rss_mb")
    assert len(mem) == 1 and mem[0].key.endswith("t=1 xnnpack=on") and not mem[0].significant
    assert mem[0].change_pct == 0.0


def test_small_memory_change_is_within_noise(heavy):
    a = bench(heavy, "heavy", runs=150)
    b = copy.deepcopy(a)
    m = b["results"][0]["memory"]
    m["peak_rss_mb"] = m["peak_rss_mb"] * 1.019   # +1.9 %: within the 2 % noise band
    d = verdicts(cmp.compare(a, b), "peak_rss_mb")[0]
    assert not d.significant and not d.regression
    m["peak_rss_mb"] = a["results"][0]["memory"]["peak_rss_mb"] * 1.03
    d = verdicts(cmp.compare(a, b), "peak_rss_mb")[0]
    assert d.significant and not d.regression


# --- accuracy gate ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def accuracy_pair(tmp_path_factory):
    """The same INT8 model evaluated on the device against two label sets: its own predictions
    (top-1 1.0) and the same with the first six labels wrong (top-1 0.9)."""
    bundle = _test_bundle()
    model, manifest = bundle / "int8.tflite", bundle / "manifest.json"
    data = np.load(bundle / "eval.npz")
    x, pred = data["x"], data["pred_int8"]
    d = tmp_path_factory.mktemp("evalsets")
    wrong = pred.copy()
    wrong[:6] = (wrong[:6] + 1) % 6
    x2, pred2 = np.concatenate([x, x]), np.concatenate([pred, pred])    # 120 images: one label = 0.83 pp
    wrong1 = pred2.copy()
    wrong1[0] = (wrong1[0] + 1) % 6
    sets = {}
    for tag, xs, y, p in (("right", x, pred, pred), ("wrong6", x, wrong, pred), ("right120", x2, pred2, pred2),
                          ("wrong1of120", x2, wrong1, pred2), ("allwrong", x, (pred + 1) % 6, pred)):
        np.savez(d / f"{tag}.npz", x=xs, y=y, pred_int8=p)
        sets[tag] = agent("eval", model, d / f"{tag}.npz", "--manifest", manifest, cache_as=f"eval-{tag}",
                          inputs=(model, d / f"{tag}.npz"))
    b = agent("bench", model, "--num_runs", 50, "--num_threads", 1, cache_as="bench-int8", inputs=(model,))
    return {tag: with_accuracy(b, ev) for tag, ev in sets.items()}


def test_on_device_accuracy_matches_predictions_computed_in_the_test(accuracy_pair):
    assert accuracy_pair["right"]["results"][0]["accuracy"]["top1"] == 1.0
    assert accuracy_pair["wrong6"]["results"][0]["accuracy"]["top1"] == pytest.approx(54 / 60)


def test_accuracy_drop_is_a_regression_and_a_gain_is_not(accuracy_pair, tmp_path, capsys):
    good, bad = accuracy_pair["right"], accuracy_pair["wrong6"]
    drop = verdicts(cmp.compare(good, bad), "top1")
    assert len(drop) == 1 and drop[0].regression and drop[0].significant
    assert drop[0].change_pct == pytest.approx(-10.0) and (drop[0].a, drop[0].b) == (1.0, pytest.approx(0.9))
    gain = verdicts(cmp.compare(bad, good), "top1")[0]
    assert gain.significant and not gain.regression and gain.change_pct == pytest.approx(10.0)
    same = verdicts(cmp.compare(good, good), "top1")[0]
    assert not same.significant and not same.regression
    assert not verdicts(cmp.compare(good, bad, acc_threshold_pp=10.5), "top1")[0].regression
    assert verdicts(cmp.compare(good, bad, acc_threshold_pp=9.5), "top1")[0].regression
    ga, gb = write(tmp_path, "a.json", good), write(tmp_path, "b.json", bad)
    assert cmp.compare_main(ga, gb, threshold_pct=1000.0) == 1
    out = capsys.readouterr().out
    assert "-10.00pp  REGRESSION" in out


# --- input handling ---------------------------------------------------------------------------

def test_render_columns(heavy):
    a = bench(heavy, "heavy")
    text = cmp.render(cmp.compare(a, a))
    lines = text.splitlines()
    assert lines[0].split() == ["setting", "metric", "A", "B", "change", "verdict"]
    assert any(ln.split()[3] == "p50_us" and ln.endswith("+0.00%  within noise") for ln in lines[1:])


def test_compare_main_refusals(heavy, tmp_path, capsys):
    a = bench(heavy, "heavy")
    other = copy.deepcopy(a)
    other["results"][0]["variant"] = "int8"   # another variant: nothing shared
    assert cmp.compare_main(write(tmp_path, "a.json", a), write(tmp_path, "o.json", other)) == 2
    assert "the two results share no model variant x threads setting" in capsys.readouterr().err
    assert cmp.compare_main(write(tmp_path, "a.json", a), "") == 2
    assert "give two result files" in capsys.readouterr().err
    moved = copy.deepcopy(a)
    moved["device"]["hostname"] = "elsewhere"
    assert cmp.compare_main(write(tmp_path, "a.json", a), write(tmp_path, "m.json", moved)) == 2
    assert "a regression gate needs one board" in capsys.readouterr().err
    assert cmp.compare_main(write(tmp_path, "a.json", a), write(tmp_path, "m.json", moved), cross_board=True) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"note: different boards: A {a['device']['hostname']} (")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        cmp.compare_main(str(tmp_path / "bad.json"), str(tmp_path / "bad.json"))


def test_settings_are_matched_by_variant_and_only_ok_results(heavy):
    a = bench(heavy, "heavy")
    b = copy.deepcopy(a)
    b["results"][0]["variant"] = "renamed"
    assert cmp.compare(a, b) == []
    a2 = copy.deepcopy(a)
    a2["results"][0]["variant"] = "renamed"
    assert {d.key for d in cmp.compare(a2, b)} == {"renamed t=1 xnnpack=on"}
    failed = copy.deepcopy(a)
    failed["results"][0]["status"] = "failed"
    assert cmp.compare(failed, a) == []


def test_default_threshold_is_five_percent(heavy):
    """A clean 5.5 % shift (real samples from a narrow band, so the shift is significant) fails the
    default gate and passes a 6 % one."""
    doc = bench(heavy, "heavy-noise", runs=400)
    samples = doc["results"][0]["runs"][0]["samples_us"]
    mid = float(np.median(samples))
    band = [s for s in samples if abs(s - mid) <= 0.02 * mid][:60]
    assert len(band) >= 10
    a, b = copy.deepcopy(doc), copy.deepcopy(doc)
    for d, factor in ((a, 1.0), (b, 1.055)):
        run = d["results"][0]["runs"][0]
        run["samples_us"] = [s * factor for s in band]
        run["p50_us"] = float(np.percentile(band, 50)) * factor
        run["p99_us"] = float(np.percentile(band, 99)) * factor
        d["results"][0]["memory"] = None
    assert verdicts(cmp.compare(a, b), "p50_us")[0].regression
    assert not verdicts(cmp.compare(a, b, threshold_pct=6.0), "p50_us")[0].regression


def test_compare_main_messages_and_threshold(light, heavy, tmp_path, capsys):
    a, b = bench(light, "light"), bench(heavy, "heavy")
    pa, pb = write(tmp_path, "a.json", a), write(tmp_path, "b.json", b)
    assert cmp.compare_main(pa, pb, threshold_pct=1e6) == 0, "the threshold reaches the gates"
    out = capsys.readouterr().out
    assert out.endswith("\n\nno regression beyond the noise and the threshold\n")
    assert any(ln.split()[3] == "p50_us" and ln.endswith("  changed") for ln in out.splitlines()[1:])
    assert cmp.compare_main(pa, "") == 2
    assert capsys.readouterr().err == \
        "host: error: give two result files: make compare A=results/x.json B=results/y.json\n"
    for change in ({"arch": "aarch64"}, {"emulated": not a["device"]["emulated"]}):
        other = copy.deepcopy(b)
        other["device"].update(change)
        assert cmp.compare_main(pa, write(tmp_path, "o.json", other)) == 2, change
        err = capsys.readouterr().err
        assert err.startswith(f"host: error: A ran on {cmp._board(a)}, B on {cmp._board(other)}: ")
        assert err.endswith("a regression gate needs one board (pass --cross-board to compare anyway)\n")
    emu = copy.deepcopy(a)
    emu["device"].update(emulated=True, arch="aarch64")
    assert cmp._board(emu) == f"{a['device']['hostname']} (aarch64, emulated)"
    assert cmp._board(a) == f"{a['device']['hostname']} ({a['device']['arch']})"
    other = copy.deepcopy(a)
    other["results"][0]["variant"] = "elsewhere"
    assert cmp.compare_main(pa, write(tmp_path, "n.json", other)) == 2
    assert capsys.readouterr().err == \
        "host: error: the two results share no model variant x threads setting to compare\n"
    with pytest.raises(FileNotFoundError, match="^result file not found: /nonexistent/x.json$"):
        cmp.compare_main("/nonexistent/x.json", pb)


def test_a_sub_point_accuracy_drop_fails_the_default_gate(accuracy_pair):
    good, bad = accuracy_pair["right120"], accuracy_pair["wrong1of120"]
    assert bad["results"][0]["accuracy"]["top1"] == pytest.approx(119 / 120)
    d = verdicts(cmp.compare(good, bad), "top1")[0]
    assert d.significant and d.regression and d.change_pct == pytest.approx(-100 / 120, abs=1e-3)  # top1 has 6 decimals
    assert not verdicts(cmp.compare(good, bad, acc_threshold_pp=1.0), "top1")[0].regression
    exact = -d.change_pct                      # a drop of exactly the threshold is allowed
    assert not verdicts(cmp.compare(good, bad, acc_threshold_pp=exact), "top1")[0].regression


def test_accuracy_on_one_side_only_is_not_compared(accuracy_pair, heavy):
    with_acc = accuracy_pair["right"]
    without = copy.deepcopy(with_acc)
    without["results"][0]["accuracy"] = None
    for a, b in ((with_acc, without), (without, with_acc)):
        assert verdicts(cmp.compare(a, b), "top1") == []


def test_xnnpack_off_is_its_own_setting(heavy):
    a = bench(heavy, "heavy-xoff", 30, "1", "--xnnpack", "off")
    keys = {d.key for d in cmp.compare(a, a)}
    assert keys == {"fp32 t=1 xnnpack=off"}


def test_memory_and_accuracy_use_the_fewest_threads_measured(accuracy_pair, heavy):
    """Threads 2,3: memory and accuracy are judged once, on the 2-thread row (not on `threads == 1`)."""
    doc = bench(heavy, "heavy-t23", 20, "2,3")
    doc["results"][0]["accuracy"] = accuracy_pair["right"]["results"][0]["accuracy"]
    deltas = cmp.compare(doc, doc)
    assert [d.key for d in verdicts(deltas, "peak_rss_mb")] == ["fp32 t=2 xnnpack=on"]
    assert [d.key for d in verdicts(deltas, "top1")] == ["fp32 t=2 xnnpack=on"]


def test_memory_band_and_threshold_boundaries(heavy):
    """Exact boundaries: +2 % is still noise, +5 % is still within the default threshold."""
    a = bench(heavy, "heavy")
    b = copy.deepcopy(a)
    a["results"][0]["memory"]["peak_rss_mb"] = 50.0
    for mb, significant, regression in ((51.0, False, False), (51.5, True, False), (52.5, True, False),
                                        (53.0, True, True)):
        b["results"][0]["memory"]["peak_rss_mb"] = mb
        d = verdicts(cmp.compare(a, b), "peak_rss_mb")[0]
        assert (d.significant, d.regression) == (significant, regression), mb


def test_zero_accuracy_is_still_compared(accuracy_pair):
    """top1 = 0.0 is a measurement (every label wrong), not a missing value: it is compared."""
    zero, good = accuracy_pair["allwrong"], accuracy_pair["right"]
    assert zero["results"][0]["accuracy"]["top1"] == 0.0
    up = verdicts(cmp.compare(zero, good), "top1")
    assert len(up) == 1 and up[0].change_pct == pytest.approx(100.0) and not up[0].regression
    down = verdicts(cmp.compare(good, zero), "top1")
    assert len(down) == 1 and down[0].regression


def test_compare_lists_the_operators_that_moved(tmp_path, capsys):
    """Two `make profile` results (a real one the agent wrote, tests/host/fixtures/profile-small-int8.json,
    and the same with one operator made much slower): the moved operator is listed, the gate is
    the whole model's. In process, so `make mutate` sees compare_main's lines."""
    doc = json.loads((ROOT / "tests" / "host" / "fixtures" / "profile-small-int8.json").read_text())
    slower = copy.deepcopy(doc)
    prof = slower["results"][0]["profile"]
    target = max(prof["ops"], key=lambda o: o["latency_us"] or 0)
    target["latency_us"] = round(target["latency_us"] * 3 + prof["whole_p50_us"], 3)
    a, b = write(tmp_path, "a-profile.json", doc), write(tmp_path, "b-profile.json", slower)
    capsys.readouterr()
    assert cmp.compare_main(a, b) == 0
    rest = capsys.readouterr().out.split("operators whose p50 moved", 1)[1]
    assert rest.splitlines()[0] == " beyond 5 % (information; the gate is the whole model's):"
    moved = rest.split("\n\n")[0].strip().splitlines()[2:]
    assert len(moved) == 1 and target["op"] in moved[0] and f" {target['index']} " in moved[0]
    assert f"{target['latency_us']:>9.2f}" in moved[0]
    assert cmp.compare_main(a, a) == 0
    assert "operators: none moved beyond 5 % (and 0.5 % of the whole model)" in capsys.readouterr().out
