"""A .tflite file as plain Python objects, through the flatbuffer schema the runtime ships.

Why: the profiler and the memory planner must see the graph itself (tensors, buffers, operator
codes), which no interpreter API exposes before delegation. ai-edge-litert ships the generated
schema (`ai_edge_litert.schema_py_generated`, plus `flatbuffers`, one of its dependencies), so the
agent still needs nothing beyond its runtime. tflite-runtime does not ship it; TensorFlow does.
"""
from __future__ import annotations

import importlib
from typing import Any, Optional

from device.errors import AgentError

# Where each runtime keeps the generated schema (tried in this order; TensorFlow last: heavy).
_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")

# Bytes per element of each TensorType name; None = not a fixed size (strings, resources).
_DTYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": None,
                "BOOL": 1, "INT16": 2, "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16,
                "UINT64": 8, "RESOURCE": None, "VARIANT": None, "UINT32": 4, "UINT16": 2,
                "INT4": 0.5, "BFLOAT16": 2, "INT2": 0.25}

BUFFER_ALIGNMENT = 16  # as the converter aligns constant buffers
_cache: dict = {}


def schema(preferred: Optional[str] = None) -> Any:
    """The generated schema module, or an AgentError saying the runtime lacks it."""
    if "module" in _cache:
        return _cache["module"]
    names = list(_SCHEMA_MODULES)
    if preferred:  # the runtime in use first, so TensorFlow is never imported beside a light runtime
        names.sort(key=lambda n: not n.startswith(preferred))
        names = [n for n in names if not n.startswith("tensorflow") or preferred == "tensorflow"]
    for name in names:
        try:
            _cache["module"] = importlib.import_module(name)
            return _cache["module"]
        except Exception:  # absent, or flatbuffers missing: try the next one
            continue
    raise AgentError("the TFLite flatbuffer schema is not available with this runtime "
                     "(it ships with ai-edge-litert; tflite-runtime lacks it): cut elsewhere with "
                     "`python -m device.profiling.pieces MODEL DIR` and pass --pieces DIR (make profile does this)",
                     kind="runtime")


def read(path: str, preferred: Optional[str] = None) -> Any:
    """The whole model as the schema's object API (ModelT)."""
    s = schema(preferred)
    try:
        with open(path, "rb") as f:
            buf = f.read()
        return inline_external(s.ModelT.InitFromPackedBuf(bytearray(buf), 0), buf)
    except OSError as exc:
        raise AgentError(f"{path}: cannot read ({exc.strerror})", kind="model_file") from None
    except Exception as exc:
        raise AgentError(f"{path}: not a readable TFLite flatbuffer ({type(exc).__name__})",
                         kind="model_file") from None


def custom_options(buf: bytes, code: str) -> Optional[dict]:
    """The decoded options (a flexbuffer map) of the first operator with custom code `code`, read
    lazily from the file's bytes (a few ms for a 4 MB detector); None when there is none, or the
    runtime ships no schema or flexbuffers (tflite-runtime)."""
    try:
        s = schema()
        from flatbuffers import flexbuffers
        model = s.Model.GetRootAs(buf, 0)
        graph = model.Subgraphs(0)
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            if (model.OperatorCodes(op.OpcodeIndex()).CustomCode() or b"").decode() == code:
                found = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
                return found if isinstance(found, dict) else None
    except Exception:       # no schema, no flexbuffers, a file it cannot read: nothing to say
        return None
    return None


def pack(model: Any) -> bytes:
    """ModelT -> .tflite bytes (with the TFL3 file identifier)."""
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _names(enum_class: Any) -> dict:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(model: Any, op: Any) -> str:
    """CONV_2D, DEPTHWISE_CONV_2D, ...; a custom op by its custom code."""
    code = model.operatorCodes[op.opcodeIndex]
    number = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
    name = _names(schema().BuiltinOperator).get(number, f"BUILTIN_{number}")
    if name == "CUSTOM":
        custom = code.customCode
        custom = custom.decode() if isinstance(custom, bytes) else str(custom)
        return f"CUSTOM:{custom}"
    return name


def dtype_name(tensor: Any) -> str:
    """'float32', 'int8', ... (NumPy-style, as the rest of the agent names dtypes)."""
    return _names(schema().TensorType).get(tensor.type, f"type{tensor.type}").lower()


def tensor_bytes(tensor: Any) -> int:
    """Static size of a tensor from its shape (dynamic dimensions count as 1)."""
    per = _DTYPE_BYTES.get(dtype_name(tensor).upper())
    if per is None:
        return 0
    n = 1
    for d in (tensor.shape if tensor.shape is not None else []):
        n *= max(1, int(d))
    return int(n * per + 0.999)


def buffer_data(model: Any, tensor: Any) -> Any:
    """The tensor's constant data (a NumPy uint8 array), or None for an activation."""
    if not tensor.buffer or tensor.buffer >= len(model.buffers):
        return None
    data = model.buffers[tensor.buffer].data
    return data if data is not None and len(data) else None


def inline_external(model: Any, buf: bytes) -> Any:
    """The model with every buffer stored after the flatbuffer (offset/size: how > 2 GB models,
    and ai-edge-quantizer's output of any size, keep their weights) read into the buffer itself,
    so the cutter, the memory plan and everything else see ordinary constant data."""
    import numpy as np

    for b in model.buffers or []:
        offset, size = int(b.offset or 0), int(b.size or 0)
        if offset > 1 and offset + size <= len(buf):
            b.data = np.frombuffer(buf, np.uint8, size, offset).copy()
            b.offset, b.size = 0, 0
    return model


def is_external(model: Any, tensor: Any) -> bool:
    """Weights stored after the flatbuffer that read() could not bring in (the file is cut short)."""
    if not tensor.buffer or tensor.buffer >= len(model.buffers):
        return False
    return int(model.buffers[tensor.buffer].offset or 0) > 1


def shape(tensor: Any) -> list:
    return [int(d) for d in (tensor.shape if tensor.shape is not None else [])]


class AlignedBuffer:
    """A BufferT stand-in whose data vector is 16-byte aligned (kernels may read it in place)."""

    def __init__(self, schema: Any, data: Any):
        self._schema, self.data = schema, data

    def Pack(self, builder: Any) -> int:
        s = self._schema
        raw = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            raw = builder.EndVector()
        s.BufferStart(builder)
        if raw is not None:
            s.BufferAddData(builder, raw)
        return s.BufferEnd(builder)
