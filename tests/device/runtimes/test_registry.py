"""The runtime registry: one module per runtime, the preference order in one place."""
from __future__ import annotations

import importlib.util

import pytest

from device.errors import EXIT_USAGE, AgentError
from device.runtimes import base, registry


def test_preference_order_is_litert_then_tflite_runtime_then_tensorflow():
    assert list(registry.RUNTIMES) == ["ai_edge_litert", "tflite_runtime", "tensorflow", "onnxruntime"]
    assert [r.name for r in registry.RUNTIMES.values() if r.auto] == ["ai_edge_litert", "tflite_runtime",
                                                                      "tensorflow"]


def test_each_runtime_names_its_interpreter_module_and_distributions():
    got = {r.name: (r.package, r.module, r.distributions) for r in registry.RUNTIMES.values()}
    assert got == {
        "ai_edge_litert": ("ai_edge_litert", "ai_edge_litert.interpreter", ("ai-edge-litert",)),
        "tflite_runtime": ("tflite_runtime", "tflite_runtime.interpreter", ("tflite-runtime",)),
        "tensorflow": ("tensorflow", "tensorflow.lite.python.interpreter",
                       ("tensorflow", "tensorflow-cpu", "tf-nightly")),
        "onnxruntime": ("onnxruntime", "onnxruntime", ("onnxruntime",)),
    }
    assert all(isinstance(r, base.Runtime) for r in registry.RUNTIMES.values())


@pytest.mark.parametrize("alias,name", [("litert", "ai_edge_litert"), ("ai-edge-litert", "ai_edge_litert"),
                                        ("tflite-runtime", "tflite_runtime"), ("tf", "tensorflow"),
                                        ("tensorflow.lite", "tensorflow"), ("tensorflow", "tensorflow")])
def test_aliases_name_the_same_runtime(alias, name):
    assert registry.get(alias).name == name


def test_an_unknown_runtime_is_refused_in_one_line():
    with pytest.raises(AgentError) as err:
        registry.resolve("mxnet")
    assert str(err.value) == ("unknown runtime 'mxnet' (choose from ai_edge_litert, tflite_runtime, tensorflow, "
                              "onnxruntime)")
    assert err.value.exit_code == EXIT_USAGE and "\n" not in str(err.value)


def test_resolve_picks_the_first_installed_runtime_in_order():
    installed = [n for n, r in registry.RUNTIMES.items() if importlib.util.find_spec(r.package) and r.auto]
    assert installed, "the test environment has a TFLite runtime"
    info = registry.resolve()
    assert info.name == installed[0] and info.module == registry.RUNTIMES[installed[0]].module
    everything = [n for n, r in registry.RUNTIMES.items() if importlib.util.find_spec(r.package)]
    assert [r["name"] for r in registry.available()] == everything


def test_only_tflite_runtime_explains_missing_int8_delegation():
    assert registry.int8_delegation_note("tflite_runtime").startswith("tflite-runtime does not delegate INT8")
    assert registry.int8_delegation_note("ai_edge_litert") is None
    assert registry.int8_delegation_note("tensorflow") is None
    assert registry.int8_delegation_note(None) is None


def test_an_interpreter_comes_from_the_runtime_that_owns_the_module(models):
    info = registry.resolve()
    module = registry.load_module(info)
    interp = registry.make_interpreter(module, models["int8"], 1, True)
    registry.allocate(interp)
    assert interp.get_input_details()


def test_a_runtime_with_its_own_interpreter_is_used_for_its_module(monkeypatch):
    """What a non-TFLite runtime (ONNX Runtime) relies on: its module gets its own interpreter."""
    import types
    made = []
    fake = base.Runtime(name="fake", package="fake_rt", module="fake_rt.session", distributions=(), model_suffix=".onnx",
                        interpreter=lambda module, path, threads, xnnpack: made.append((path, threads, xnnpack)) or "s")
    monkeypatch.setitem(registry.RUNTIMES, "fake", fake)
    assert registry.make_interpreter(types.ModuleType("fake_rt.session"), "m.onnx", 3, False) == "s"
    assert made == [("m.onnx", 3, False)]
