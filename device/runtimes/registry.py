"""Find a TFLite runtime and make interpreters with it.

The order ai_edge_litert -> tflite_runtime -> tensorflow matters: only the first two are light
enough for a board, and only ai_edge_litert hands INT8 graphs to XNNPACK. Resolution uses
find_spec so the parent process never imports a runtime (and never TensorFlow) just to name it.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Optional

from device.errors import AgentError, EXIT_USAGE, one_line

# runtime name -> (module to import, module holding Interpreter, distributions to ask for a version).
# The order is the order of preference when no --runtime is given.
_RUNTIMES = {
    "ai_edge_litert": ("ai_edge_litert", "ai_edge_litert.interpreter", ("ai-edge-litert",)),
    "tflite_runtime": ("tflite_runtime", "tflite_runtime.interpreter", ("tflite-runtime",)),
    "tensorflow": ("tensorflow", "tensorflow.lite.python.interpreter", ("tensorflow", "tensorflow-cpu", "tf-nightly")),
}
_ALIASES = {"litert": "ai_edge_litert", "ai-edge-litert": "ai_edge_litert",
            "tflite-runtime": "tflite_runtime", "tf": "tensorflow", "tensorflow.lite": "tensorflow"}


@dataclass
class RuntimeInfo:
    name: str
    version: Optional[str]
    module: str


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(_RUNTIMES[name][0]) is not None
    except (ImportError, ValueError):
        return False


def _version(name: str) -> Optional[str]:
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    for dist in _RUNTIMES[name][2]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def resolve(requested: Optional[str] = None) -> RuntimeInfo:
    """The runtime to use: the requested one, else the first installed in _RUNTIMES' order."""
    if requested:
        name = _ALIASES.get(requested, requested)
        if name not in _RUNTIMES:
            raise AgentError(f"unknown runtime {requested!r} (choose from {', '.join(_RUNTIMES)})",
                             EXIT_USAGE, "usage")
        if not _installed(name):
            raise AgentError(f"runtime {name} is not installed", EXIT_USAGE, "runtime")
        return RuntimeInfo(name, _version(name), _RUNTIMES[name][1])
    for name in _RUNTIMES:
        if _installed(name):
            return RuntimeInfo(name, _version(name), _RUNTIMES[name][1])
    raise AgentError("no TFLite runtime found: install ai-edge-litert (or tflite-runtime)",
                     EXIT_USAGE, "runtime")


def available() -> list:
    """All installed runtimes with versions (for `info`)."""
    return [{"name": n, "version": _version(n)} for n in _RUNTIMES if _installed(n)]


def load_module(info: RuntimeInfo) -> Any:
    """Import the module that holds Interpreter (and OpResolverType)."""
    try:
        module = importlib.import_module(info.module)
    except Exception as exc:  # a broken wheel raises anything (ImportError, AttributeError, ...)
        raise AgentError(f"runtime {info.name} failed to import: {type(exc).__name__}: {exc}",
                         kind="runtime") from None
    if not hasattr(module, "Interpreter"):
        raise AgentError(f"runtime {info.name} has no Interpreter", kind="runtime")
    return module


def make_interpreter(module: Any, model_path: str, num_threads: int, xnnpack: bool = True) -> Any:
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


def allocate(interpreter: Any) -> None:
    try:
        interpreter.allocate_tensors()
    except Exception as exc:
        raise AgentError(f"cannot allocate tensors: {one_line(exc)}", kind="allocate") from None


def invoke(interpreter: Any) -> None:
    try:
        interpreter.invoke()
    except Exception as exc:
        raise AgentError(f"invoke failed: {one_line(exc)}", kind="invoke") from None
