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


# The builtin ops the XNNPACK delegate has kernels for (TFLite's xnnpack_delegate.cc, 2.x): anything
# else stays on the builtin kernels whatever its types.
_XNNPACK_OPS = {"ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CEIL", "CONCATENATION", "CONV_2D",
                "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EXP", "FLOOR",
                "FULLY_CONNECTED", "GELU", "HARD_SWISH", "LEAKY_RELU", "LOG", "LOGISTIC", "MAX_POOL_2D",
                "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU", "QUANTIZE", "RELU", "RELU6",
                "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "ROUND", "RSQRT", "SIN", "COS", "SLICE",
                "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE",
                "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "VAR_HANDLE",
                "READ_VARIABLE", "ASSIGN_VARIABLE"}
_XNNPACK_TYPES = {"float32", "float16", "int8", "uint8"}


def why_not_delegated(name: str, in_dtypes: list, out_dtypes: list, computed_inputs: list) -> str:
    """The likely reason XNNPACK left an op on the builtin kernels, in one phrase.

    XNNPACK decides silently (it logs nothing per op in release builds), so this is read from what
    it is known to refuse: ops it has no kernel for, tensors of types it does not run, a quantised
    SOFTMAX, a shape computed at run time."""
    if name not in _XNNPACK_OPS:
        return f"XNNPACK has no {name} kernel"
    if name == "RESHAPE" and len(computed_inputs) > 1 and computed_inputs[1]:
        return "the new shape is computed at run time (XNNPACK needs a constant shape: export with a fixed batch)"
    data = [t for t, computed in zip(in_dtypes, computed_inputs) if computed] + out_dtypes  # constants are params
    odd = sorted({t for t in data if t and t not in _XNNPACK_TYPES})
    if odd:
        return f"XNNPACK runs float/int8/uint8 tensors only, this {name} works on {', '.join(odd)} (shape arithmetic)"
    if name == "SOFTMAX" and any(t in ("int8", "uint8") for t in out_dtypes):
        return "XNNPACK has no quantised SOFTMAX kernel (end the classifier at its logits: quantize --softmax host)"
    if name in ("RELU", "RELU6", "RELU_N1_TO_1") and any(t in ("int8", "uint8") for t in out_dtypes):
        return f"XNNPACK takes a quantised {name} only fused into the op before it (Conv/Dense activation=)"
    if any(t == "uint8" for t in in_dtypes + out_dtypes):
        return f"XNNPACK refused this uint8 {name} (per-tensor uint8 is only partly supported: use per-channel int8)"
    return f"XNNPACK refused this {name} (a parameter or fused activation it does not support)"


def _reasons(nodes: list, left: list, dtypes: dict) -> dict:
    """op name -> why XNNPACK did not take it (the first reason found per op type)."""
    produced = {t for n in nodes for t in n[2]}
    out: dict = {}
    for i in left:
        name, ins, outs = nodes[i]
        if name not in out:
            out[name] = why_not_delegated(name, [dtypes.get(t) for t in ins], [dtypes.get(t) for t in outs],
                                          [t in produced for t in ins])
    return dict(sorted(out.items()))


def analyse(interpreter: Any) -> dict:
    """Op counts and delegation: ops_total, ops_delegated, delegate_nodes, ops not delegated (and
    why, when a delegate took part of the graph)."""
    if hasattr(interpreter, "delegation"):      # a runtime that is not TFLite says it itself
        return interpreter.delegation()
    try:
        nodes = _nodes(interpreter)
    except Exception:
        return {"ops_total": None, "ops_delegated": None, "delegate_nodes": None,
                "ops_not_delegated": {}, "not_delegated_why": {}, "quantized": None, "op_types": {}}
    original = [i for i, n in enumerate(nodes) if n[0] != "DELEGATE"]
    delegates = [i for i, n in enumerate(nodes) if n[0] == "DELEGATE"]
    taken = set(_partitions(nodes, original, delegates))
    dtypes = _tensor_dtypes(interpreter)
    quantized = any(nodes[i][0] in _COMPUTE_OPS and
                    any(dtypes.get(t) in ("int8", "uint8", "int16") for t in nodes[i][2])
                    for i in original)
    left_ops = [i for i in original if i not in taken]
    left = Counter(nodes[i][0] for i in left_ops)
    return {
        "ops_total": len(original),
        "ops_delegated": len(taken),
        "delegate_nodes": len(delegates),
        "ops_not_delegated": dict(sorted(left.items())),
        "not_delegated_why": _reasons(nodes, left_ops, dtypes) if delegates else {},
        "quantized": quantized,
        "op_types": dict(sorted(Counter(nodes[i][0] for i in original).items())),
    }
