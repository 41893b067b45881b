"""What a runtime provides, and the TFLite-style implementation the three TFLite runtimes share.

A runtime is found without importing it (find_spec on `package`), so the parent process never
pays for a runtime (or TensorFlow) just to name it; only the child that measures imports it.
An implementation that is not TFLite (ONNX Runtime) gives its own `load` and `interpreter`,
returning an object with the TFLite Interpreter's methods, so bench, eval, infer and serve use it
unchanged.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from device.errors import AgentError, one_line


def load_tflite(name: str, module_name: str) -> Any:
    """Import the module that holds Interpreter (and OpResolverType)."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a broken wheel raises anything (ImportError, AttributeError, ...)
        raise AgentError(f"runtime {name} failed to import: {type(exc).__name__}: {exc}",
                         kind="runtime") from None
    if not hasattr(module, "Interpreter"):
        raise AgentError(f"runtime {name} has no Interpreter", kind="runtime")
    return module


def tflite_interpreter(module: Any, model_path: str, num_threads: int, xnnpack: bool = True) -> Any:
    """An Interpreter with explicit threads; xnnpack=False selects the builtin kernels only.

    XNNPACK is applied by default by the light runtimes; the only supported way to switch it off
    from Python is the op resolver without default delegates.
    """
    kwargs = {"model_path": model_path, "num_threads": int(num_threads)}
    if not xnnpack:
        resolver = getattr(module, "OpResolverType", None)
        if resolver is None or not hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
            raise AgentError("this runtime cannot disable XNNPACK (no OpResolverType)", kind="runtime")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return module.Interpreter(**kwargs)
    except Exception as exc:
        raise AgentError(f"cannot load model: {one_line(exc)}", kind="load") from None


@dataclass(frozen=True)
class Runtime:
    """One runtime the agent can run models with.

    name: how --runtime, `info` and every result name it. package: the top-level module looked
    for (never imported to find it). module: the module `load` imports (the one holding
    Interpreter). distributions: the installed distributions asked for its version, in order.
    aliases: other spellings --runtime accepts. int8_delegation_note: None when the runtime hands
    INT8 graphs to XNNPACK, else why it does not (shown when a bench finds nothing delegated).
    load(name, module) -> the imported module; interpreter(module, path, threads, xnnpack) -> an
    object with the TFLite Interpreter's methods (allocate_tensors, invoke, get/set_tensor, ...);
    such an object may also have delegation() -> graph.analyse's fields, when it is not TFLite.
    """
    name: str
    package: str
    module: str
    distributions: tuple
    aliases: tuple = ()
    int8_delegation_note: Optional[str] = None
    load: Callable[[str, str], Any] = load_tflite
    interpreter: Callable[..., Any] = tflite_interpreter
    auto: bool = True               # chosen when no --runtime is given (False: only when asked for)
    model_suffix: str = ".tflite"   # the model files it runs
