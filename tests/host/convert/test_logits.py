"""A classifier's final SOFTMAX taken out of the graph: the same top-1 on the test split, every op
on XNNPACK, and the agent's probabilities computed from the logits as the manifest says."""
from __future__ import annotations

import json
import tempfile

import numpy as np
import pytest
import tensorflow  # noqa: F401  (required: a broken install must fail here, not skip)

from device.profiling import flatmodel
from device.runtimes import graph, registry as runtimes
from device.serving.predictor import Predictor
from device.tasks.classify import softmax
from host.convert import logits
from host.convert.quantize import convert_all, graph_summary
from host.pipeline.evaluate import evaluate_variants


def ops(data: bytes) -> list:
    """The graph's operators as the file holds them (before any delegate)."""
    s = flatmodel.schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    return [flatmodel.op_name(model, op) for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def both(tiny_bundle):
    """The bundle's manifest, the bundle's model converted with its softmax kept, the same bytes with
    it taken out, and the test split."""
    import keras

    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    model = keras.models.load_model(tiny_bundle / "model.keras")
    with np.load(tiny_bundle / "eval.npz") as data:
        x, y = data["x"], data["y"]
    calib = x[:50].astype(np.float32) / 255.0
    kept = convert_all(model, calib, ("fp32", "int8"))
    stripped, where = logits.apply(kept, "host")
    assert where == {"where": "host", "beta": 1.0}
    return manifest, kept, stripped, x, y


def test_bundle_ends_at_the_logits(both, tiny_bundle):
    manifest, kept, stripped, _, _ = both
    assert manifest["softmax"] == {"where": "host", "beta": 1.0}
    for v in manifest["variants"]:
        assert "SOFTMAX" not in ops((tiny_bundle / f"{v}.tflite").read_bytes())
    for v in stripped:
        assert ops(kept[v])[-1] == "SOFTMAX"
        assert ops(stripped[v]) == ops(kept[v])[:-1]
    out_kept, out_stripped = graph_summary(kept["int8"])["outputs"][0], graph_summary(stripped["int8"])["outputs"][0]
    assert out_stripped["name"] == out_kept["name"] and out_stripped["dtype"] == "int8"
    assert out_kept["scale"] == pytest.approx(1 / 256)        # probabilities' fixed scale ...
    assert out_stripped["scale"] != pytest.approx(1 / 256)    # ... the logits have their own


def _graph_outputs(model: bytes, x: np.ndarray, rows) -> dict:
    """Row -> the model's raw output on test image `row` (the host's preprocessing)."""
    from ai_edge_litert.interpreter import Interpreter

    from device.contract.inputs import pixels_to_input
    from host.pipeline.evaluate import builtin_rule

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    spec = graph.tensor_spec(interp.get_input_details()[0])
    pre = builtin_rule(tuple(int(d) for d in x.shape[1:]))
    out = {}
    for row in rows:
        interp.set_tensor(spec["index"], pixels_to_input(x[row:row + 1], spec, pre))
        interp.invoke()
        out[row] = interp.get_tensor(interp.get_output_details()[0]["index"])[0].copy()
    return out


def test_same_top1_on_the_test_split(both):
    """Softmax is monotonic: the logits' argmax is the probabilities'. The only difference allowed
    is where the graph's int8 probabilities tie at the top (their resolution is 1/256), which the
    logits break: each such image is checked to be one."""
    _, kept, stripped, x, y = both
    for v in ("fp32", "int8"):
        a = evaluate_variants({v: kept[v]}, x, y)[v]
        b = evaluate_variants({v: stripped[v]}, x, y)[v]
        differ = np.flatnonzero(a.predictions != b.predictions)
        if v == "fp32":
            assert len(differ) == 0
        for row, probs in _graph_outputs(kept[v], x, differ).items():
            tied = np.flatnonzero(probs == probs.max())
            assert len(tied) > 1 and b.predictions[row] in tied, f"{v}: image {row} differs without a tie"
        assert abs(a.top1 - b.top1) <= len(differ) / len(y)


def test_every_int8_op_is_delegated(both):
    _, kept, stripped, _, _ = both
    module = runtimes.load_module(runtimes.resolve())
    found = {}
    for name, data in (("kept", kept["int8"]), ("stripped", stripped["int8"])):
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(data)
            f.flush()
            interp = runtimes.make_interpreter(module, f.name, 1)
            runtimes.allocate(interp)
            found[name] = graph.analyse(interp)
    assert found["kept"]["ops_not_delegated"] == {"SOFTMAX": 1}
    assert found["stripped"]["ops_not_delegated"] == {}
    assert found["stripped"]["ops_delegated"] == found["stripped"]["ops_total"]


def test_graph_choice_and_non_classifiers_keep_the_graph(both):
    _, kept, _, _, _ = both
    same, where = logits.apply({"int8": kept["int8"]}, "graph")
    assert same["int8"] == kept["int8"] and where["where"] == "graph"
    once, _ = logits.strip_softmax(kept["int8"])
    twice, note = logits.strip_softmax(once)          # no SOFTMAX at the end any more: left alone
    assert twice == once and note["where"] == "graph" and "FULLY_CONNECTED" in note["why"]
    with pytest.raises(ValueError):
        logits.apply({}, "device")


def test_agent_reports_probabilities_from_the_logits(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    path = str(tiny_bundle / "int8.tflite")
    with np.load(tiny_bundle / "eval.npz") as data:
        image = data["x"][:1]
    on_host = Predictor(path, runtimes.resolve(), manifest=manifest)
    raw = Predictor(path, runtimes.resolve(), manifest=dict(manifest, softmax=None))
    tensor = on_host.tensor_from_array(image[0], "x")
    k = on_host.task.classes(on_host.out_specs)
    probs = on_host.predict(tensor, k)["top_k"]
    scores = raw.predict(tensor, k)["top_k"]
    assert [p["index"] for p in probs] == [s["index"] for s in scores]        # same order, same top-1
    assert sum(p["score"] for p in probs) == pytest.approx(1.0, abs=1e-4)
    by_index = {s["index"]: s["score"] for s in scores}
    expected = softmax(np.array([by_index[i] for i in range(k)]))
    assert [p["score"] for p in probs] == pytest.approx([expected[p["index"]] for p in probs], abs=1e-5)
