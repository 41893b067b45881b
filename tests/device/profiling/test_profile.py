"""`python -m device profile`: the cutter, the per-operator timing and the static memory plan,
on real models (the default architecture in FP32 and INT8, MLPerf Tiny models, a WHILE loop)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from device.contract import schema
from device.profiling import flatmodel, memplan, opcut
from device.profiling.memplan import Interval
from tests.device.conftest import SHARED_MODELS

pytestmark = pytest.mark.timeout(600)
SHARED = sorted(glob.glob(os.path.join(SHARED_MODELS, "*.tflite")))
needs_shared = pytest.mark.skipif(not SHARED, reason=f"no third-party models in {SHARED_MODELS}")


@pytest.fixture(scope="module")
def default_models(tmp_path_factory):
    """A MobileNet-style model (host/model/architecture.py, mnist5k's 28x28x1, 10 classes: all blocks depthwise-
    separable, as the default was before its first block became a full conv, which the builtin kernels run
    with im2col scratch the static plan does not hold) with random weights, converted by the host's own
    converter to every variant (FP32, FP16, dynamic, INT8)."""
    os.environ.setdefault("EDGEKIT_QUIET", "1")
    import tensorflow as tf
    from host.convert.quantize import convert_all
    from host.model.architecture import build_model
    tf.keras.utils.set_random_seed(5)
    model = build_model((28, 28, 1), 10, stem_filters=32,
                        blocks=((64, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)))
    calib = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    out = tmp_path_factory.mktemp("default_models")
    paths = {}
    for variant, blob in convert_all(model, calib, ["fp32", "fp16", "dynamic", "int8"]).items():
        paths[variant] = str(out / f"{variant}.tflite")
        with open(paths[variant], "wb") as f:
            f.write(blob)
    return paths


@pytest.fixture(scope="module")
def while_model(tmp_path_factory):
    """MUL, then a WHILE loop (three additions in a body subgraph), then ADD: the WHILE cannot be cut."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def f(x):
        y = x * 2.0
        _, y = tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v + 1.0), [tf.constant(0), y])
        return y + x

    blob = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
    path = tmp_path_factory.mktemp("while") / "while.tflite"
    path.write_bytes(blob)
    return str(path)


# ------------------------------------------------------------------ the planner, by hand

def test_planner_chain_by_hand():
    # x (input, 100 B, alive all run) -op0-> a (200 B) -op1-> b (50 B) -op2-> y (output, 100 B)
    x, a, b, y = Interval(0, 100, 0), Interval(1, 200, 0, 1), Interval(2, 50, 1, 2), Interval(3, 100, 2)
    offsets, arena = memplan.place([x, a, b, y])
    # x first at 0 (alive all run); a (largest) after x at align64(100)=128; y (100 B, from op 2)
    # does not meet a, so it reuses 128; b meets x, a and y: after a, at align64(128+200)=384.
    assert offsets == {0: 0, 1: 128, 3: 128, 2: 384}
    assert arena == 384 + 50
    assert memplan.live_bytes([x, a, b, y], 3) == [300, 350, 250]


def test_planner_reuses_and_fills_gaps_by_hand():
    # Three tensors that never meet share offset 0; a small one fits the best gap between two others.
    seq = [Interval(0, 100, 0, 1), Interval(1, 80, 2, 3), Interval(2, 60, 4, 5)]
    assert memplan.place(seq) == ({0: 0, 1: 0, 2: 0}, 100)
    # Best fit, not first fit: T6 (ops 3..5) meets T1, T3 and T5 only; of the two gaps left by
    # T2 (512..832, 320 B) and T4 (1088..1344, 256 B) it takes the tighter one.
    t = [Interval(1, 512, 0, 9), Interval(2, 300, 0, 2), Interval(3, 256, 0, 9), Interval(4, 200, 0, 2),
         Interval(5, 150, 0, 9), Interval(6, 128, 3, 5)]
    offsets, arena = memplan.place(t)
    assert offsets == {1: 0, 2: 512, 3: 832, 4: 1088, 5: 1344, 6: 1088}
    assert arena == 1344 + 150


def test_plan_matches_the_interpreters_own_placement(models, default_models):
    """Where no kernel needs scratch memory, every activation sits exactly where the plan says
    (builtin kernels: the interpreter's arena is then the only allocator)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    for path, exact in ((models["two_inputs"], True), (default_models["int8"], False),
                        (default_models["fp32"], False)):
        plan = memplan.plan(flatmodel.read(path))
        interp = Interpreter(model_path=path,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
        ptr = {t["index"]: interp.tensor(t["index"])().__array_interface__["data"][0] for t in plan["tensors"]}
        base = min(ptr.values())
        same = [t["index"] for t in plan["tensors"] if ptr[t["index"]] - base == t["offset"]]
        extent = max(ptr[t["index"]] - base + t["bytes"] for t in plan["tensors"])
        if exact:
            assert len(same) == len(plan["tensors"])
        assert extent == plan["arena_bytes"], path
        assert len(same) >= len(plan["tensors"]) - 1, path   # TFLite may share a RESHAPE in place
        peak = plan["peak_op"]
        assert sum(t["bytes"] for t in plan["live_at_peak"]) == plan["peak_live_bytes"]
        assert all(t["first_op"] <= peak <= t["last_op"] for t in plan["live_at_peak"])
        flat = flatmodel.read(path)   # weights: the tensors' constant buffers (not the metadata's)
        used = {t.buffer for t in flat.subgraphs[0].tensors if t.buffer}
        weights = sum(len(flat.buffers[b].data) for b in used if flat.buffers[b].data is not None)
        assert 0 < plan["weights_bytes"] == weights


# ------------------------------------------------------------------ cutting is right

def _run(path: str, feeds: list, xnnpack: bool) -> list:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_path=path, num_threads=1, **kwargs)
    interp.allocate_tensors()
    for d, a in zip(interp.get_input_details(), feeds):
        interp.set_tensor(d["index"], a)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def _chain(path: str, feeds: list, tmp_path, xnnpack: bool) -> list:
    """Run the single-operator pieces in graph order, each fed what its producers computed."""
    flat = flatmodel.read(path)
    sg = flat.subgraphs[0]
    values = {int(t): a for t, a in zip(sg.inputs, feeds)}
    unpackers = opcut.weight_ops(flat)
    for i, op in enumerate(sg.operators):
        if i in unpackers:
            continue          # fp16 -> fp32 weights: carried inside the pieces that use them
        piece = tmp_path / f"op{i}.tflite"
        piece.write_bytes(opcut.cut(flat, i))
        outs = _run(str(piece), [values[t] for t in opcut.piece_inputs(flat, i)], xnnpack)
        values.update({int(t): o for t, o in zip([t for t in op.outputs if t >= 0], outs)})
    return [values[int(t)] for t in sg.outputs]


def _random_feeds(path: str) -> list:
    from ai_edge_litert.interpreter import Interpreter
    from device.contract.inputs import random_input
    interp = Interpreter(model_path=path)
    rng = np.random.default_rng(1)
    return [random_input({"name": d["name"], "shape": list(d["shape"]), "dtype": np.dtype(d["dtype"]).name}, rng)
            for d in interp.get_input_details()]


def _assert_chain_reproduces(path: str, tmp_path, xnnpack: bool) -> None:
    feeds = _random_feeds(path)
    whole, chained = _run(path, feeds, xnnpack), _chain(path, feeds, tmp_path, xnnpack)
    for w, c in zip(whole, chained):
        assert w.dtype == c.dtype and w.shape == c.shape
        if w.dtype.kind == "f":
            np.testing.assert_allclose(c, w, rtol=1e-4, atol=1e-5)
        else:  # XNNPACK fuses nothing across ops here, so integer pieces agree exactly (builtin) or by 1
            assert np.abs(c.astype(np.int64) - w.astype(np.int64)).max() <= (1 if xnnpack else 0)


@pytest.mark.parametrize("variant", ["fp32", "fp16", "dynamic", "int8"])
@pytest.mark.parametrize("xnnpack", [False, True])
def test_chained_pieces_reproduce_the_default_model(default_models, variant, xnnpack, tmp_path):
    _assert_chain_reproduces(default_models[variant], tmp_path, xnnpack)


@needs_shared
def test_chained_pieces_reproduce_mlperf_tiny_models(tmp_path):
    for path in SHARED:
        where = tmp_path / os.path.basename(path)
        where.mkdir()
        _assert_chain_reproduces(path, where, xnnpack=False)


def test_pieces_keep_weights_and_make_activations_inputs(default_models):
    flat = flatmodel.read(default_models["int8"])
    sg = flat.subgraphs[0]
    for i, op in enumerate(sg.operators):
        piece = flatmodel.schema().ModelT.InitFromPackedBuf(bytearray(opcut.cut(flat, i)), 0)
        psg = piece.subgraphs[0]
        assert len(psg.operators) == 1 and flatmodel.op_name(piece, psg.operators[0]) == flatmodel.op_name(flat, op)
        consts = [t for t in psg.tensors if flatmodel.buffer_data(piece, t) is not None]
        assert sum(len(flatmodel.buffer_data(piece, t)) for t in consts) == opcut.facts(flat, i)["weight_bytes"]
        assert len(psg.inputs) == len(opcut.piece_inputs(flat, i))


# ------------------------------------------------------------------ the agent command

def _profile(agent, *args) -> dict:
    run = agent("profile", *args, "--num_runs", "20", "--warmup_runs", "2", "--json", "-")
    assert run.code == 0, run.stderr
    schema.validate(run.doc)
    assert "Traceback" not in run.stderr
    return run.doc


def _check_profile(result: dict) -> dict:
    prof, plan = result["profile"], result["memory_plan"]
    ops = prof["ops"]
    assert len(ops) == result["model"]["ops_total"] == plan["ops"]
    assert [o["index"] for o in ops] == list(range(len(ops)))
    for o in ops:
        assert (o["latency_us"] is None) == (o["reason"] is not None), o
    timed = [o["latency_us"] for o in ops if o["latency_us"] is not None]
    assert prof["sum_p50_us"] == pytest.approx(sum(timed) + prof["invoke_overhead_us"], abs=0.01)
    assert prof["whole_p50_us"] == result["runs"][0]["p50_us"]
    assert sum(r["count"] for r in prof["by_type"]) == len(ops)
    assert plan["arena_bytes"] >= plan["peak_live_bytes"] > 0
    return prof


def test_profile_default_models(agent, default_models):
    doc = _profile(agent, default_models["fp32"], default_models["int8"])
    fp32, int8 = (_check_profile(r) for r in doc["results"])
    for prof in (fp32, int8):
        assert all(o["latency_us"] is not None for o in prof["ops"])
        convs = [o for o in prof["ops"] if o["op"] == "CONV_2D"]
        assert convs and all(o["macs"] > 0 and o["weight_bytes"] > 0 for o in convs)
    assert all(o["delegated"] for o in fp32["ops"])
    softmax = [o for o in int8["ops"] if o["op"] == "SOFTMAX"]
    assert softmax and not softmax[0]["delegated"]          # XNNPACK has no int8 softmax
    assert sum(o["macs"] for o in fp32["ops"]) == sum(o["macs"] for o in int8["ops"]) > 1_000_000
    plans = [r["memory_plan"] for r in doc["results"]]
    assert plans[0]["weights_bytes"] > 3 * plans[1]["weights_bytes"]   # float32 vs int8 weights
    assert plans[0]["arena_bytes"] > 3 * plans[1]["arena_bytes"]


def test_fp16_weights_are_unpacked_inside_their_consumers(agent, default_models):
    """FP16 files carry DEQUANTIZE ops that turn weights into float32 once, at load: they cost
    nothing per invoke, and the convolutions that use them are timed with static weights."""
    doc = _profile(agent, default_models["fp16"], default_models["fp32"])
    fp16, fp32 = (_check_profile(r) for r in doc["results"])
    deq = [o for o in fp16["ops"] if o["op"] == "DEQUANTIZE"]
    assert deq and all(o["latency_us"] == 0.0 and o["weight_bytes"] == 0 for o in deq)
    convs16 = [o for o in fp16["ops"] if o["op"] == "CONV_2D"]
    convs32 = [o for o in fp32["ops"] if o["op"] == "CONV_2D"]
    assert [2 * o["weight_bytes"] for o in convs16] == pytest.approx([o["weight_bytes"] for o in convs32], rel=0.01)
    plan16, plan32 = (r["memory_plan"] for r in doc["results"])
    assert plan16["arena_bytes"] == plan32["arena_bytes"]          # unpacked weights are not activations
    assert plan16["unpacked_weights_bytes"] >= plan32["weights_bytes"] * 0.99


def test_profile_without_xnnpack_marks_nothing_delegated(agent, default_models):
    prof = _check_profile(_profile(agent, default_models["int8"], "--no_xnnpack")["results"][0])
    assert not any(o["delegated"] or o["partition"] is not None for o in prof["ops"])


def test_uncuttable_operators_are_listed_with_a_reason(agent, while_model, models):
    doc = _profile(agent, while_model, models["custom_op"])
    loop, custom = doc["results"]
    prof = _check_profile(loop)
    by_op = {o["op"]: o for o in prof["ops"]}
    assert by_op["WHILE"]["latency_us"] is None and "subgraph" in by_op["WHILE"]["reason"]
    assert by_op["MUL"]["latency_us"] is not None
    assert prof["whole_p50_us"] > 0
    ops = custom["profile"]["ops"]
    igamma = [o for o in ops if o["op"].startswith("CUSTOM")]
    assert igamma and igamma[0]["latency_us"] is None and "Igamma" in igamma[0]["reason"]
    assert custom["profile"]["whole_p50_us"] is None     # the whole model cannot run here either
    assert any("cannot run" in w for w in doc["warnings"])


@needs_shared
def test_profile_mlperf_tiny_models(agent):
    doc = _profile(agent, *SHARED)
    for r in doc["results"]:
        prof = _check_profile(r)
        assert all(o["latency_us"] is not None for o in prof["ops"]), r["model"]["name"]
        assert sum(o["macs"] for o in prof["ops"]) > 100_000


def test_profile_from_agent_pyz(agent, pyz, models, tmp_path):
    run = agent("profile", models["int8"], "--num_runs", "5", "--json", "-", entry=pyz, cwd=str(tmp_path))
    assert run.code == 0, run.stderr
    assert run.doc["results"][0]["profile"]["ops"]


def test_profile_bad_input_is_one_line(agent, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    run = agent("profile", str(bad), "--json", "-")
    assert run.code == 1 and "Traceback" not in run.stderr
    assert run.doc["results"][0]["status"] == "failed"
    run = agent("profile", str(bad), "--num_runs", "0")
    assert run.code == 2 and len(run.stderr.strip().splitlines()) == 1


def test_pieces_cut_elsewhere_profile_the_same(agent, default_models, models, tmp_path):
    """The tflite-runtime path: pieces cut by `python -m device.profiling.pieces`, timed by `profile --pieces`."""
    import subprocess
    import sys
    from tests.device.conftest import REPO, agent_env
    out = tmp_path / "pieces"
    proc = subprocess.run([sys.executable, "-m", "device.profiling.pieces", default_models["fp16"], str(out)],
                          capture_output=True, text=True, cwd=REPO, env=agent_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    shipped = _profile(agent, default_models["fp16"], "--pieces", out)["results"][0]
    direct = _profile(agent, default_models["fp16"])["results"][0]
    strip = ("latency_us", "p90_us", "gross_p50_us", "share")
    assert [{k: v for k, v in o.items() if k not in strip} for o in shipped["profile"]["ops"]] == \
           [{k: v for k, v in o.items() if k not in strip} for o in direct["profile"]["ops"]]
    assert shipped["profile"]["cut_elsewhere"] and not direct["profile"]["cut_elsewhere"]
    assert shipped["memory_plan"] == direct["memory_plan"]
    _check_profile(shipped)
    wrong = agent("profile", default_models["int8"], "--pieces", out, "--json", "-")
    assert wrong.code == 1 and "cut from another model" in wrong.doc["errors"][0]
    both = agent("profile", default_models["int8"], models["fp32"], "--pieces", out)
    assert both.code == 2 and "exactly one MODEL" in both.stderr


def _externalised(src: str, dst: str) -> int:
    """`src` rewritten with every constant buffer stored after the flatbuffer (offset/size), the
    layout ai-edge-quantizer writes for models of any size; returns how many buffers moved."""
    flat = flatmodel.read(src)
    moved = [b for b in flat.buffers if b.data is not None and len(b.data)]
    payloads = [bytes(b.data) for b in moved]
    for b, p in zip(moved, payloads):                # placeholders first: the fields' size is fixed
        b.data, b.offset, b.size = None, 2, len(p)
    start = -(-len(flatmodel.pack(flat)) // 16) * 16
    pos = start
    for b, p in zip(moved, payloads):
        b.offset, pos = pos, -(-(pos + len(p)) // 16) * 16
    head = flatmodel.pack(flat)
    assert len(head) <= start
    with open(dst, "wb") as f:
        f.write(head.ljust(start, b"\0"))
        for b, p in zip(moved, payloads):
            f.write(p.ljust(-(-len(p) // 16) * 16, b"\0"))
    return len(moved)


def test_weights_stored_after_the_flatbuffer_are_profiled_like_inline_ones(agent, default_models, tmp_path):
    """Not a > 2 GB model: ai-edge-quantizer keeps weights after the flatbuffer at any size. The
    pieces must carry them, and the profile equal the inline model's op for op."""
    ext = str(tmp_path / "int8_external.tflite")
    assert _externalised(default_models["int8"], ext) > 10
    assert all(not b.offset for b in flatmodel.read(ext).buffers)              # read inlines them
    feeds = _random_feeds(ext)
    np.testing.assert_array_equal(_run(ext, feeds, False)[0], _run(default_models["int8"], feeds, False)[0])
    doc = _profile(agent, ext, default_models["int8"])
    got, want = (_check_profile(r) for r in doc["results"])
    assert all(o["latency_us"] is not None for o in got["ops"])
    assert [(o["op"], o["weight_bytes"], o["macs"]) for o in got["ops"]] == \
           [(o["op"], o["weight_bytes"], o["macs"]) for o in want["ops"]]
    assert doc["results"][0]["memory_plan"]["weights_bytes"] == doc["results"][1]["memory_plan"]["weights_bytes"]
