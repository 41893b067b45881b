"""A classifier's final SOFTMAX taken out of the converted graph, so the model ends at its logits.

Why: top-1 needs only the argmax, and softmax is monotonic, so the argmax of the logits is the
argmax of the probabilities. In an INT8 graph the SOFTMAX is the one operator XNNPACK has no
int8 kernel for: every inference leaves the delegate for it and comes back. Without it the whole
graph runs on XNNPACK, and the agent computes probabilities in NumPy (ten exponentials) only when
a prediction reports them. The manifest's `softmax` entry says where it went ("host", with the
op's beta) or that it stayed in the graph ("graph").

The edit is on the flatbuffer (the schema the runtime ships, device/profiling/flatmodel.py), so
it applies alike to the built-in model and to a user's own classifier from any format, after
conversion: the logits tensor is the same tensor, with the same quantisation, that fed the SOFTMAX.
"""
from __future__ import annotations

import math
from typing import Any

CHOICES = ("host", "graph")
DEFAULT = "host"


def _ids(values: Any) -> list[int]:
    return [int(i) for i in (values if values is not None else [])]


def final_softmax(model: Any) -> tuple[int | None, str]:
    """(index of the SOFTMAX op that produces the graph's only output, '') or (None, why not)."""
    from device.profiling import flatmodel

    if len(model.subgraphs or []) != 1:
        return None, "the model has more than one subgraph"
    sg = model.subgraphs[0]
    outs = _ids(sg.outputs)
    if len(outs) != 1:
        return None, f"the model has {len(outs)} outputs"
    producers = [n for n, op in enumerate(sg.operators or []) if outs[0] in _ids(op.outputs)]
    if not producers:
        return None, "the output is not produced by an operator"
    n = producers[0]
    name = flatmodel.op_name(model, sg.operators[n])
    if name != "SOFTMAX":
        return None, f"the graph ends in {name}, not SOFTMAX"
    logits = _ids(sg.operators[n].inputs)[0]
    if logits in _ids(sg.inputs):
        return None, "the SOFTMAX reads the model input directly"
    if any(int(b.offset or 0) > 1 for b in model.buffers or []):
        return None, "the weights are stored after the flatbuffer (offset buffers)"
    return n, ""


def strip_softmax(model_bytes: bytes) -> tuple[bytes, dict]:
    """(the model ending at its logits, {"where": "host", "beta": b}) when its only output is a
    SOFTMAX, else (the bytes unchanged, {"where": "graph", "why": ...})."""
    from device.profiling import flatmodel

    s = flatmodel.schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    n, why = final_softmax(model)
    if n is None:
        return model_bytes, {"where": "graph", "why": why}
    sg = model.subgraphs[0]
    op = sg.operators[n]
    beta = float(getattr(op.builtinOptions, "beta", 1.0) or 1.0)
    probs, logits = _ids(op.outputs)[0], _ids(op.inputs)[0]
    del sg.operators[n]
    sg.outputs = [logits]
    for sig in model.signatureDefs or []:
        for t in sig.outputs or []:
            if t.tensorIndex == probs:
                t.tensorIndex = logits
    # the logits take the output's name, so code that finds the output by name still does
    old = sg.tensors[probs].name
    sg.tensors[probs].name = (old.decode() if isinstance(old, bytes) else str(old)) + "/softmax_removed"
    sg.tensors[logits].name = old
    model.buffers = [flatmodel.AlignedBuffer(s, b.data if b.data is not None and len(b.data) else None)
                     for b in model.buffers]
    return flatmodel.pack(model), {"where": "host", "beta": beta}


def strip_onnx_softmax(model_bytes: bytes) -> tuple[bytes, dict]:
    """The ONNX counterpart of strip_softmax, for ONNX Runtime's variants: their outputs must mean
    what the .tflite variants' outputs mean, since the manifest's `softmax` entry is one for all."""
    import onnx

    model = onnx.ModelProto.FromString(model_bytes)
    graph = model.graph
    if len(graph.output) != 1:
        return model_bytes, {"where": "graph", "why": f"the ONNX model has {len(graph.output)} outputs"}
    probs = graph.output[0].name
    node = next((n for n in graph.node if probs in n.output), None)
    if node is None or node.op_type != "Softmax":
        return model_bytes, {"where": "graph", "why": f"the ONNX graph ends in {node.op_type if node else 'no op'}, "
                                                      "not Softmax"}
    dims = graph.output[0].type.tensor_type.shape.dim
    axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    if len(dims) > 2 and axis not in (-1, len(dims) - 1):
        return model_bytes, {"where": "graph", "why": "the Softmax is not over the last axis"}
    logits = node.input[0]
    if logits in {i.name for i in graph.input} | {t.name for t in graph.initializer}:
        return model_bytes, {"where": "graph", "why": "the Softmax reads the model input directly"}
    graph.node.remove(node)
    for n in graph.node:        # the logits take the output's name, as in strip_softmax
        n.output[:] = [probs if o == logits else o for o in n.output]
        n.input[:] = [probs if i == logits else i for i in n.input]
    kept = [v for v in graph.value_info if v.name != logits]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return model.SerializeToString(), {"where": "host", "beta": 1.0}


def apply(files: dict[str, bytes], choice: str) -> tuple[dict[str, bytes], dict]:
    """Every variant with its softmax where `choice` says, and the manifest's `softmax` entry.

    All variants get the same treatment (their outputs must mean the same thing to the agent);
    when one variant cannot be stripped, none is."""
    if choice not in CHOICES:
        raise ValueError(f"softmax={choice!r}: choose host or graph")
    if choice == "graph":
        return files, {"where": "graph", "why": "asked (--softmax graph)"}
    out, notes = {}, {}
    for variant, data in files.items():
        out[variant], notes[variant] = strip_softmax(data)
    kept = {v: n for v, n in notes.items() if n["where"] != "host"}
    if kept:
        v, n = next(iter(kept.items()))
        return files, {"where": "graph", "why": f"{v}: {n['why']}"}
    beta = next(iter(notes.values()))["beta"] if notes else 1.0
    return out, {"where": "host", "beta": beta if math.isfinite(beta) else 1.0}
