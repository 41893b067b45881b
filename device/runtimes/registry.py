"""The runtimes the agent knows, in order of preference, and making interpreters with them.

The order ai_edge_litert -> tflite_runtime -> tensorflow matters: only the first two are light
enough for a board, and only ai_edge_litert hands INT8 graphs to XNNPACK. Each runtime is one
module (device/runtimes/base.py says what it provides); this is the one place that lists them.
Resolution uses find_spec so the parent process never imports a runtime just to name it.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Optional

from device.errors import EXIT_USAGE, AgentError, one_line
from device.runtimes import litert, onnxruntime, tensorflow_lite, tflite_runtime
from device.runtimes.base import Runtime, load_tflite, tflite_interpreter

# The order is the order of preference when no --runtime is given (ONNX Runtime only when asked for).
RUNTIMES = {r.name: r for r in (litert.RUNTIME, tflite_runtime.RUNTIME, tensorflow_lite.RUNTIME,
                                onnxruntime.RUNTIME)}
_ALIASES = {alias: r.name for r in RUNTIMES.values() for alias in r.aliases}


@dataclass
class RuntimeInfo:
    """The chosen runtime as the parent passes it to a child (plain JSON: name, version, module)."""
    name: str
    version: Optional[str]
    module: str


def get(name: str) -> Runtime:
    """The runtime called name (or one of its aliases); an unknown name is a usage error."""
    key = _ALIASES.get(name, name)
    if key not in RUNTIMES:
        raise AgentError(f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})", EXIT_USAGE, "usage")
    return RUNTIMES[key]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(RUNTIMES[name].package) is not None
    except (ImportError, ValueError):
        return False


def dist_version(dist: str, package: str, metadata_too: bool = True) -> Optional[str]:
    """The installed version of distribution `dist` (which provides import package `package`), read
    from its dist-info folder name beside the package; importlib.metadata only when that does not
    say (and `metadata_too`). Why: importlib.metadata's import and scan cost ~0.1 s of every agent
    start on a board."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        prefix = dist.replace("-", "_").lower() + "-"
        try:
            names = [e for e in os.listdir(site) if e.lower().startswith(prefix) and e.endswith(".dist-info")]
        except OSError:
            names = []
        if len(names) == 1:
            return names[0][len(prefix):-len(".dist-info")]
    if not metadata_too:
        return None
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:  # not installed under that name (or no metadata at all)
        return None


def _version(name: str) -> Optional[str]:
    """Every distribution's dist-info folder first (tensorflow-cpu provides `tensorflow`), then metadata."""
    dists = RUNTIMES[name].distributions
    for found in (dist_version(d, RUNTIMES[name].package, False) for d in dists):
        if found:
            return found
    for found in (dist_version(d, RUNTIMES[name].package) for d in dists):
        if found:
            return found
    return None


def _info(name: str) -> RuntimeInfo:
    return RuntimeInfo(name, _version(name), RUNTIMES[name].module)


def resolve(requested: Optional[str] = None) -> RuntimeInfo:
    """The runtime to use: the requested one, else the first installed in RUNTIMES' order."""
    if requested:
        name = get(requested).name
        if not _installed(name):
            raise AgentError(f"runtime {name} is not installed", EXIT_USAGE, "runtime")
        return _info(name)
    for name in RUNTIMES:
        if RUNTIMES[name].auto and _installed(name):
            return _info(name)
    raise AgentError("no TFLite runtime found: install ai-edge-litert (or tflite-runtime)",
                     EXIT_USAGE, "runtime")


def available() -> list:
    """All installed runtimes with versions (for `info`)."""
    return [{"name": n, "version": _version(n)} for n in RUNTIMES if _installed(n)]


def int8_delegation_note(name: Optional[str]) -> Optional[str]:
    """Why the runtime called name leaves INT8 graphs off XNNPACK, or None when it does not."""
    runtime = RUNTIMES.get(_ALIASES.get(name, name)) if name else None
    return runtime.int8_delegation_note if runtime else None


def load_module(info: RuntimeInfo) -> Any:
    """Import the runtime's module (for a TFLite runtime, the one holding Interpreter). A name this
    registry does not know is imported as a TFLite runtime: the child trusts the job it was given."""
    known = RUNTIMES.get(info.name)
    return (known.load if known else load_tflite)(info.name, info.module)


def _for_module(module: Any) -> Optional[Runtime]:
    name = getattr(module, "__name__", None)
    return next((r for r in RUNTIMES.values() if r.module == name), None)


def make_interpreter(module: Any, model_path: str, num_threads: int, xnnpack: bool = True) -> Any:
    """An interpreter from the runtime that module belongs to, with explicit threads;
    xnnpack=False selects the builtin kernels only."""
    runtime = _for_module(module)
    suffix = os.path.splitext(model_path)[1].lower()
    owner = next((r for r in RUNTIMES.values() if r.model_suffix == suffix), None)
    if runtime is not None and owner is not None and suffix != runtime.model_suffix:
        raise AgentError(f"a {suffix} model runs with --runtime {owner.name}, not {runtime.name}", kind="load")
    build = runtime.interpreter if runtime else tflite_interpreter
    return build(module, model_path, num_threads, xnnpack)


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
