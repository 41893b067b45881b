"""What the interpreter made of the model: tensors, ops, and how much of the graph XNNPACK took.

After a delegate is applied the interpreter's node list holds the original ops plus one
DELEGATE node per partition. An original op belongs to a partition when it lies between the
DELEGATE node's inputs and outputs, so walking back from the outputs, stopping at the inputs,
finds exactly the ops the delegate replaced.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

# Compute ops whose int8/uint8 outputs mark a fully quantised ("INT8") model.
_COMPUTE_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV",
                "BATCH_MATMUL", "CONV_3D", "ADD", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN"}


def tensor_spec(detail: dict) -> dict:
    """A JSON-friendly description of an input/output tensor."""
    q = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in np.asarray(q.get("scales", [])).ravel()]
    zps = [int(z) for z in np.asarray(q.get("zero_points", [])).ravel()]
    scale, zp = detail.get("quantization", (0.0, 0))
    signature = detail.get("shape_signature", detail["shape"])
    return {
        "name": str(detail.get("name", "")),
        "index": int(detail["index"]),
        "shape": [int(d) for d in detail["shape"]],
        "shape_signature": [int(d) for d in signature],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zp),
                         "per_channel": len(scales) > 1} if (scale or len(scales) > 1) else None,
        "_scales": scales[:1], "_zps": zps[:1],
    }


def public_spec(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if not k.startswith("_")}


def _nodes(interpreter: Any) -> list:
    """(name, inputs, outputs) for every node, through the wrapper every runtime version has."""
    wrapper = interpreter._interpreter
    nodes = []
    for i in range(wrapper.NumNodes()):
        nodes.append((wrapper.NodeName(i),
                      [int(t) for t in wrapper.NodeInputs(i) if t >= 0],
                      [int(t) for t in wrapper.NodeOutputs(i) if t >= 0]))
    return nodes


def _tensor_dtypes(interpreter: Any) -> dict:
    dtypes = {}
    try:
        for d in interpreter.get_tensor_details():
            dtypes[int(d["index"])] = np.dtype(d["dtype"]).name
    except Exception:
        pass
    return dtypes


def _partitions(nodes: list, original: list, delegates: list) -> dict:
    """op index -> number of the delegate partition (0, 1, ...) that took it."""
    producer = {}
    for i in original:
        for t in nodes[i][2]:
            producer[t] = i
    taken = {}
    for number, d in enumerate(delegates):
        boundary = set(nodes[d][1])
        stack = list(nodes[d][2])
        seen = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t not in producer:
                continue
            seen.add(t)
            op = producer[t]
            if op not in taken:
                taken[op] = number
                stack.extend(nodes[op][1])
    return taken


def partitions(interpreter: Any) -> dict:
    """op index -> delegate partition, for every op a delegate took (empty if none or unknown)."""
    try:
        nodes = _nodes(interpreter)
    except Exception:
        return {}
    original = [i for i, n in enumerate(nodes) if n[0] != "DELEGATE"]
    return _partitions(nodes, original, [i for i, n in enumerate(nodes) if n[0] == "DELEGATE"])


def analyse(interpreter: Any) -> dict:
    """Op counts and delegation: ops_total, ops_delegated, delegate_nodes, ops not delegated."""
    if hasattr(interpreter, "delegation"):      # a runtime that is not TFLite says it itself
        return interpreter.delegation()
    try:
        nodes = _nodes(interpreter)
    except Exception:
        return {"ops_total": None, "ops_delegated": None, "delegate_nodes": None,
                "ops_not_delegated": {}, "quantized": None, "op_types": {}}
    original = [i for i, n in enumerate(nodes) if n[0] != "DELEGATE"]
    delegates = [i for i, n in enumerate(nodes) if n[0] == "DELEGATE"]
    taken = set(_partitions(nodes, original, delegates))
    dtypes = _tensor_dtypes(interpreter)
    quantized = any(nodes[i][0] in _COMPUTE_OPS and
                    any(dtypes.get(t) in ("int8", "uint8", "int16") for t in nodes[i][2])
                    for i in original)
    left = Counter(nodes[i][0] for i in original if i not in taken)
    return {
        "ops_total": len(original),
        "ops_delegated": len(taken),
        "delegate_nodes": len(delegates),
        "ops_not_delegated": dict(sorted(left.items())),
        "quantized": quantized,
        "op_types": dict(sorted(Counter(nodes[i][0] for i in original).items())),
    }
