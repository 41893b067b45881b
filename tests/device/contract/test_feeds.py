"""device/contract/feeds.py: arrays meet a model's inputs by name or by position, the same way for
the board's any-tensor eval, the host's scoring of a raw bundle and CALIB=npz:.

The two-input test model is Keras inputs (a [4], b [3]); the converter put them in the order b, a
and named the tensors serving_default_b:0, serving_default_a:0 - the case where position misleads."""
from __future__ import annotations

import numpy as np
import pytest

from device.contract import feeds
from device.errors import AgentError


def _reference(path: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The model's outputs computed here with LiteRT by tensor index, independently of feeds.py."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=path)
    interp.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interp.get_input_details()}
    out = []
    for i in range(len(a)):
        interp.set_tensor(by_name["serving_default_a:0"], a[i:i + 1])
        interp.set_tensor(by_name["serving_default_b:0"], b[i:i + 1])
        interp.invoke()
        out.append(interp.get_tensor(interp.get_output_details()[0]["index"])[0])
    return np.stack(out)


@pytest.fixture(scope="module")
def two(models, tmp_path_factory):
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    return models["two_inputs"], a, b, _reference(models["two_inputs"], a, b), tmp_path_factory.mktemp("feeds")


@pytest.mark.parametrize("arrays", [
    lambda a, b: {"a": a, "b": b},                                           # the Keras names, Keras order
    lambda a, b: {"serving_default_a:0": a, "serving_default_b:0": b},       # the .tflite tensor names
    lambda a, b: {"x0": b, "x1": a},                                         # by position: the converted order
])
def test_the_board_evaluates_inputs_by_name_or_position(agent, two, arrays):
    path, a, b, y0, tmp = two
    np.savez(tmp / "set.npz", y0=y0, **arrays(a, b))
    run = agent("eval", path, tmp / "set.npz", "--json", "-")
    assert run.code == 0, run.stderr
    (out,) = run.doc["results"][0]["tensors"]["outputs"]
    assert out["max_abs_error"] < 1e-5 and out["mean_cosine"] == pytest.approx(1.0, abs=1e-6)


def test_an_array_matching_no_input_is_one_line_naming_both(agent, two):
    path, a, b, y0, tmp = two
    np.savez(tmp / "bad.npz", a=a, c=b, y0=y0)
    run = agent("eval", path, tmp / "bad.npz", "--json", "-")
    lines = run.stderr.strip().splitlines()
    assert run.code == 2 and len(lines) == 1, run.stderr
    assert "array 'c' matches none of the model's inputs (b, a)" in lines[0]
    assert "the converted model's" in lines[0]


def test_the_host_scores_a_raw_bundle_by_name_with_the_same_matcher(two):
    from host.convert.source import ModelError
    from host.pipeline.tasks import score_tensor_set

    path, a, b, y0, tmp = two
    model = open(path, "rb").read()
    np.savez(tmp / "named.npz", b=b, a=a, y0=y0, labels=np.argmax(y0, axis=1))
    got = score_tensor_set({"fp32": model}, f"npz:{tmp / 'named.npz'}")["fp32"]
    assert got["outputs"][0]["max_abs_error"] < 1e-5 and got["top1"] == 1.0
    np.savez(tmp / "typo.npz", a=a, bb=b, y0=y0)
    with pytest.raises(ModelError, match=r"array 'bb' matches none of the model's inputs \(b, a\)"):
        score_tensor_set({"fp32": model}, f"npz:{tmp / 'typo.npz'}")


def test_calibration_by_name_uses_the_same_matcher(tmp_path):
    from host.data.builtin import DatasetError
    from host.data.user import load_tensor_calibration

    specs = [{"name": "serving_default_sensor:0", "shape": [1, 2], "dtype": "float32"},
             {"name": "serving_default_features:0", "shape": [1, 3], "dtype": "float32"}]
    np.savez(tmp_path / "c.npz", features=np.ones((4, 3)), sensor=np.zeros((4, 2)))
    sensor, features = load_tensor_calibration(f"npz:{tmp_path / 'c.npz'}", 4, specs, ["sensor", "features"])
    assert sensor.shape == (4, 2) and not sensor.any() and features.all()
    np.savez(tmp_path / "t.npz", feature=np.ones((4, 3)), sensor=np.zeros((4, 2)))
    with pytest.raises(DatasetError, match="array 'feature' matches none of the model's inputs"):
        load_tensor_calibration(f"npz:{tmp_path / 't.npz'}", 4, specs, ["sensor", "features"])


@pytest.mark.parametrize("given, says", [
    (["x0", "sensor"], "arrays x0 are positional and sensor are names"),
    (["x1"], "number them x0, x1, ... without gaps"),
    (["x0"], "1 input arrays for a model with 2 inputs (b, a)"),
    (["a", "serving_default_a:0"], "both name input 'a'"),
    (["a"], "no array for model input 'b'"),
])
def test_match_refusals(given, says):
    specs = [{"name": "serving_default_b:0", "index": 0}, {"name": "serving_default_a:0", "index": 1}]
    assert feeds.match(["a", "b"], specs, "set") == ["b", "a"]
    with pytest.raises(AgentError, match=None) as err:
        feeds.match(given, specs, "set")
    assert says in str(err.value) and err.value.kind == "usage"
