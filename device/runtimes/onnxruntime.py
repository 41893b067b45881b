"""ONNX Runtime on the board: .onnx models behind the TFLite Interpreter's methods.

The agent's bench, eval, infer and serve code talks to a TFLite-style interpreter (inputs and
outputs by tensor index, set_tensor / invoke / get_tensor), so this module wraps an ORT
InferenceSession in that shape and everything else runs unchanged, with the same result schema.

Settings: intra-op threads = --num_threads, sequential execution, graph optimisation level
ORT_ENABLE_ALL (EDGEKIT_ORT_OPT=disable|basic|extended|all overrides it; the level used is
recorded in the result). "XNNPACK on" asks for ORT's XNNPACK execution provider, which only some
wheels carry (the PyPI wheels for x86_64 and aarch64 do not); without it the session runs on the
CPU execution provider and the result says why nothing was delegated.

Partition facts come from ORT's own profiler, switched on for the first inference only (ORT turns
it off at end_profiling): every node that ran, its op type and the execution provider that ran it.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from device.errors import AgentError, one_line
from device.runtimes.base import Runtime

XNNPACK_EP = "XnnpackExecutionProvider"
CPU_EP = "CPUExecutionProvider"
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
# ONNX element types -> NumPy dtype names (the ones a vision / audio model takes or gives). Names,
# and NumPy imported where it is used: the agent's parent process imports this module to list the
# runtimes, and should not pay for NumPy (device/measure/isolate.py).
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
           "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}
if TYPE_CHECKING:
    import numpy as np
# Op types that mark an integer-quantised graph once ORT has fused its QDQ pairs.
_QUANT_OPS = {"QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
              "QLinearAveragePool", "QGemm", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
              "QuantizeLinear", "DequantizeLinear", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat"}


def load_ort(name: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # a broken wheel raises anything
        raise AgentError(f"runtime {name} failed to import: {type(exc).__name__}: {exc}",
                         kind="runtime") from None


def opt_level_name() -> str:
    """The graph optimisation level in force (EDGEKIT_ORT_OPT, default all)."""
    level = os.environ.get("EDGEKIT_ORT_OPT", "all").strip().lower()
    if level not in _OPT_LEVELS:
        raise AgentError(f"EDGEKIT_ORT_OPT={level!r}: choose from {', '.join(_OPT_LEVELS)}", kind="usage")
    return level


def _dims(shape: list) -> tuple:
    """(shape with dynamic dims as 1, signature with dynamic dims as -1)."""
    fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
    return [d or 1 for d in fixed], [d or -1 for d in fixed]


def _detail(arg: Any, index: int, shape: Optional[list] = None) -> dict:
    import numpy as np

    dtype = _DTYPES.get(arg.type)
    if dtype is None:
        raise AgentError(f"tensor {arg.name!r} has type {arg.type}, which the agent does not feed", kind="load")
    now, signature = _dims(list(arg.shape or []))
    return {"name": arg.name, "index": index, "shape": np.array(shape or now, dtype=np.int32),
            "shape_signature": np.array(signature, dtype=np.int32), "dtype": np.dtype(dtype).type,
            "quantization": (0.0, 0),
            "quantization_parameters": {"scales": np.zeros(0, np.float32), "zero_points": np.zeros(0, np.int32)}}


class OrtInterpreter:
    """An InferenceSession with the TFLite Interpreter's methods; inputs are tensors 0..n-1 and
    outputs n..n+m-1."""

    def __init__(self, module: Any, model_path: str, num_threads: int, xnnpack: bool = True):
        self.opt_level = opt_level_name()
        available = list(module.get_available_providers())
        options = module.SessionOptions()
        options.execution_mode = module.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.graph_optimization_level = getattr(module.GraphOptimizationLevel, _OPT_LEVELS[self.opt_level])
        options.log_severity_level = 3
        self._profile_dir = tempfile.mkdtemp(prefix="edgekit-ort-")
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(self._profile_dir, "profile")
        if xnnpack and XNNPACK_EP in available:
            # ORT's advice for XNNPACK: its own thread pool does the work, the session's stays at 1
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            providers: list = [(XNNPACK_EP, {"intra_op_num_threads": str(int(num_threads))}), CPU_EP]
        else:
            options.intra_op_num_threads = int(num_threads)
            providers = [CPU_EP]
        self.note = None
        if xnnpack and XNNPACK_EP not in available:
            self.note = (f"this onnxruntime wheel has no XNNPACK execution provider "
                         f"(it has {', '.join(p for p in available if p != 'AzureExecutionProvider')})")
        try:
            self._session = module.InferenceSession(model_path, options, providers=providers)
        except Exception as exc:
            self._cleanup()
            raise AgentError(f"cannot load model: {one_line(exc)}", kind="load") from None
        self.providers = list(self._session.get_providers())
        self._inputs = list(self._session.get_inputs())
        self._outputs = list(self._session.get_outputs())
        self._in_shapes: dict = {}
        self._feeds: dict = {}
        self._results: list = []
        self._facts: Optional[dict] = None
        self._out_names = [o.name for o in self._outputs]

    # -------------------------------------------------------- the TFLite Interpreter's methods
    def get_input_details(self) -> list:
        return [_detail(a, i, self._in_shapes.get(i)) for i, a in enumerate(self._inputs)]

    def get_output_details(self) -> list:
        n = len(self._inputs)
        shapes = {}
        for i, value in enumerate(self._results):
            shapes[i] = list(value.shape)
        return [_detail(a, n + i, shapes.get(i)) for i, a in enumerate(self._outputs)]

    def get_tensor_details(self) -> list:
        return self.get_input_details() + self.get_output_details()

    def resize_tensor_input(self, index: int, shape: list) -> None:
        _, signature = _dims(list(self._inputs[index].shape or []))
        if len(signature) != len(shape) or any(s not in (-1, d) for s, d in zip(signature, shape)):
            raise ValueError(f"input {self._inputs[index].name!r} is {signature}, cannot take {list(shape)}")
        self._in_shapes[index] = [int(d) for d in shape]

    def allocate_tensors(self) -> None:
        """ORT allocates per run; nothing to do."""

    def set_tensor(self, index: int, value: "np.ndarray") -> None:
        import numpy as np

        self._feeds[self._inputs[index].name] = np.ascontiguousarray(value)

    def invoke(self) -> None:
        self._results = self._session.run(self._out_names, self._feeds)
        if self._facts is None:
            self._facts = self._read_profile()

    def get_tensor(self, index: int) -> "np.ndarray":
        n = len(self._inputs)
        if index < n:
            return self._feeds[self._inputs[index].name]
        if not self._results:
            raise ValueError("no outputs yet: invoke first")
        return self._results[index - n]

    def tensor(self, index: int):
        return lambda: self.get_tensor(index)

    # -------------------------------------------------------- partition facts
    def delegation(self) -> dict:
        """graph.analyse's fields, from the profiled first inference (run on zeros if none ran yet)."""
        if self._facts is None:
            import numpy as np

            saved = dict(self._feeds)
            for d in self.get_input_details():
                self._feeds.setdefault(d["name"], np.zeros(d["shape"], d["dtype"]))
            self.invoke()
            self._feeds = saved
        return dict(self._facts)

    def _read_profile(self) -> dict:
        nodes: dict = {}
        try:
            path = self._session.end_profiling()
            with open(path) as f:
                events = json.load(f)
            for e in events:
                args = e.get("args") or {}
                if e.get("cat") == "Node" and "op_name" in args:
                    nodes[e.get("name", "")] = (args["op_name"], args.get("provider", CPU_EP))
        except (OSError, ValueError):
            nodes = {}
        finally:
            self._cleanup()
        ops = Counter(op for op, _ in nodes.values())
        delegated = [n for n, (_, ep) in nodes.items() if ep == XNNPACK_EP]
        left = Counter(op for op, ep in nodes.values() if ep != XNNPACK_EP)
        facts = {"ops_total": len(nodes) if nodes else None, "ops_delegated": len(delegated),
                 "delegate_nodes": len(delegated), "ops_not_delegated": dict(sorted(left.items())),
                 "not_delegated_why": {op: ("ran on ONNX Runtime's CPU execution provider: this wheel has no "
                                            "XNNPACK execution provider" if XNNPACK_EP not in self.providers
                                            else "the XNNPACK execution provider did not take it")
                                       for op in sorted(left)},
                 "quantized": bool(_QUANT_OPS & set(ops)), "op_types": dict(sorted(ops.items())),
                 "execution_providers": self.providers, "graph_optimization": self.opt_level}
        if self.note:
            facts["delegation_note"] = self.note
        return facts

    def _cleanup(self) -> None:
        shutil.rmtree(self._profile_dir, ignore_errors=True)

    def __del__(self) -> None:  # a session dropped before its first inference leaves no temp folder
        self._cleanup()


def ort_interpreter(module: Any, model_path: str, num_threads: int, xnnpack: bool = True) -> OrtInterpreter:
    return OrtInterpreter(module, model_path, num_threads, xnnpack)


RUNTIME = Runtime(name="onnxruntime", package="onnxruntime", module="onnxruntime",
                  distributions=("onnxruntime",), aliases=("ort", "onnx"), load=load_ort,
                  interpreter=ort_interpreter, auto=False, model_suffix=".onnx")
