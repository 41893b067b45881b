"""Cut a .tflite model into single-operator models, and describe each operator.

Why: the Python runtimes expose no per-op profiler, but a model with one operator can be timed
like any model. Each piece keeps the operator's weights (constant inputs, copied with their
quantisation) and turns its activation inputs into model inputs, so feeding a piece the values
its producers computed reproduces that operator's output exactly (tests chain the pieces and
compare with the whole model).
"""
from __future__ import annotations

import copy
from typing import Any

from device.profiling import flatmodel

# Operators that run other subgraphs, or keep state between ops: they cannot stand alone.
_CONTROL_FLOW = {"WHILE", "IF", "CALL", "CALL_ONCE", "STABLEHLO_WHILE", "STABLEHLO_CASE",
                 "STABLEHLO_REDUCE", "STABLEHLO_REDUCE_WINDOW", "STABLEHLO_SCATTER", "STABLEHLO_SORT",
                 "STABLEHLO_COMPOSITE"}
_STATEFUL = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "HASHTABLE", "HASHTABLE_FIND",
             "HASHTABLE_IMPORT", "HASHTABLE_SIZE"}


class Uncuttable(Exception):
    """This operator cannot be profiled on its own; the message says why (one line)."""


def _ids(values: Any) -> list:
    return [int(i) for i in (values if values is not None else [])]


_WEIGHT_OPS = {"DEQUANTIZE", "DENSIFY"}  # on constant inputs: weights unpacked once, at load


def weight_ops(model: Any) -> dict:
    """Ops that only unpack constant weights (fp16 -> fp32 DEQUANTIZE, DENSIFY of sparse weights):
    op index -> the tensor they produce. TFLite runs them once (their output is persistent) and
    XNNPACK folds them into its packed weights, so they cost nothing per invoke; their consumers
    take them along into their own pieces."""
    sg = model.subgraphs[0]
    out = {}
    for n, op in enumerate(sg.operators or []):
        ins = [i for i in _ids(op.inputs) if i >= 0]
        outs = [i for i in _ids(op.outputs) if i >= 0]
        if (flatmodel.op_name(model, op) in _WEIGHT_OPS and ins and len(outs) == 1
                and all(flatmodel.buffer_data(model, sg.tensors[i]) is not None for i in ins)):
            out[n] = outs[0]
    return out


def why_not(model: Any, index: int) -> str:
    """'' when op `index` of the main graph can be cut out, else the reason."""
    sg = model.subgraphs[0]
    op = sg.operators[index]
    name = flatmodel.op_name(model, op)
    if name in _CONTROL_FLOW:
        return f"{name} runs other subgraphs (control flow cannot be cut out)"
    if name in _STATEFUL:
        return f"{name} works on state shared with other operators"
    for i in _ids(op.inputs) + _ids(op.intermediates):
        if i >= 0 and sg.tensors[i].isVariable:
            return f"{name} reads a variable tensor (state kept between invokes)"
        if i >= 0 and flatmodel.is_external(model, sg.tensors[i]):
            return f"{name} has weights stored outside the flatbuffer, past the end of the file"
    return ""


def piece_inputs(model: Any, index: int) -> list:
    """Tensor indices (of the whole model) that become the piece's inputs, in the piece's order."""
    sg = model.subgraphs[0]
    unpacked = set(weight_ops(model).values())
    seen = []
    for i in _ids(sg.operators[index].inputs):
        if i >= 0 and i not in seen and i not in unpacked and flatmodel.buffer_data(model, sg.tensors[i]) is None:
            seen.append(i)
    return seen


def cut(model: Any, index: int) -> bytes:
    """The .tflite bytes of a model holding only operator `index`; Uncuttable if it cannot be."""
    reason = why_not(model, index)
    if reason:
        raise Uncuttable(reason)
    s = flatmodel.schema()
    sg = model.subgraphs[0]
    op = sg.operators[index]
    unpackers = {t: n for n, t in weight_ops(model).items()}
    # The op itself, preceded by whatever unpacks its weights (kept with it, as the runtime does).
    members = [unpackers[i] for i in _ids(op.inputs) if i in unpackers and unpackers[i] != index] + [index]
    buffers = [flatmodel.AlignedBuffer(s, None)]
    tensors, new_index, codes, ops = [], {}, [], []
    for n in members:
        member = sg.operators[n]
        for i in _ids(member.inputs) + _ids(member.outputs) + _ids(member.intermediates):
            if i < 0 or i in new_index:
                continue
            t = copy.copy(sg.tensors[i])
            data = flatmodel.buffer_data(model, t)
            if data is not None:
                buffers.append(flatmodel.AlignedBuffer(s, data))
                t.buffer = len(buffers) - 1
            else:
                t.buffer = 0
            new_index[i] = len(tensors)
            tensors.append(t)
        piece = copy.copy(member)
        if member.opcodeIndex not in codes:
            codes.append(member.opcodeIndex)
        piece.opcodeIndex = codes.index(member.opcodeIndex)
        piece.inputs = [new_index[i] if i >= 0 else -1 for i in _ids(member.inputs)]
        piece.outputs = [new_index[i] for i in _ids(member.outputs) if i >= 0]
        piece.intermediates = [new_index[i] for i in _ids(member.intermediates) if i >= 0] or None
        ops.append(piece)
    graph = s.SubGraphT()
    graph.tensors = tensors
    graph.inputs = [new_index[i] for i in piece_inputs(model, index)]
    graph.outputs = [new_index[i] for i in _ids(op.outputs) if i >= 0]
    graph.operators = ops
    graph.name = f"op{index}"
    out = s.ModelT()
    out.version = model.version or 3
    out.operatorCodes = [model.operatorCodes[c] for c in codes]
    out.subgraphs = [graph]
    out.buffers = buffers
    out.description = f"edgekit piece: op {index}"
    return flatmodel.pack(out)


def trivial_model() -> bytes:
    """A float32 [1] + constant ADD: one invoke() of it is the fixed cost every piece also pays."""
    import numpy as np
    s = flatmodel.schema()
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    tensors = []
    for name, buffer in (("x", 0), ("c", 1), ("y", 0)):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1], s.TensorType.FLOAT32, buffer, name
        tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = s.BuiltinOptions.AddOptions
    op.builtinOptions = s.AddOptionsT()
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [2], [op]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [flatmodel.AlignedBuffer(s, None), flatmodel.AlignedBuffer(s, np.ones(1, np.float32).view(np.uint8))]
    return flatmodel.pack(model)


def _macs(name: str, ins: list, out_shapes: list) -> int:
    """Multiply-accumulates of the operators that do matrix work; 0 for the others."""
    if not out_shapes or any(s is None for s in ins[:2]) or len(ins) < 2:
        return 0
    out = 1
    for d in out_shapes[0]:
        out *= max(1, d)
    w = ins[1]
    if name == "CONV_2D" and len(w) == 4:                  # filter [O, KH, KW, I]
        return out * w[1] * w[2] * w[3]
    if name == "DEPTHWISE_CONV_2D" and len(w) == 4:        # filter [1, KH, KW, O]
        return out * w[1] * w[2]
    if name == "FULLY_CONNECTED" and len(w) == 2:          # weights [units, K]
        return out * w[1]
    if name == "CONV_3D" and len(w) == 5:                  # filter [KD, KH, KW, I, O]
        return out * w[0] * w[1] * w[2] * w[3]
    if name == "BATCH_MATMUL" and ins[0]:                  # [..., M, K] x [..., K, N]
        return out * ins[0][-1]
    if name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[2] and len(w) == 4:  # (shape, filter, input)
        n = 1
        for d in ins[2]:
            n *= max(1, d)
        return n * w[0] * w[1] * w[2]
    return 0


def facts(model: Any, index: int) -> dict:
    """What the file says about operator `index`: type, output shape/dtype, MACs, bytes in and out."""
    sg = model.subgraphs[0]
    op = sg.operators[index]
    name = flatmodel.op_name(model, op)
    unpackers = {t: n for n, t in weight_ops(model).items()}
    weight, act_in, in_shapes, buffers = 0, 0, [], set()
    for i in _ids(op.inputs):
        if i < 0:
            in_shapes.append(None)
            continue
        t = sg.tensors[i]
        in_shapes.append(flatmodel.shape(t))
        if i in unpackers:  # weights unpacked at load: count the file's bytes they come from
            for j in _ids(sg.operators[unpackers[i]].inputs):
                src = sg.tensors[j]
                if j >= 0 and src.buffer not in buffers:
                    buffers.add(src.buffer)
                    weight += len(flatmodel.buffer_data(model, src))
            continue
        data = flatmodel.buffer_data(model, t)
        if data is not None:
            if t.buffer not in buffers:
                buffers.add(t.buffer)
                weight += len(data)
        else:
            act_in += flatmodel.tensor_bytes(t)
    if index in weight_ops(model):
        weight = 0  # counted with the op that uses them
    outs = [sg.tensors[i] for i in _ids(op.outputs) if i >= 0]
    out_shapes = [flatmodel.shape(t) for t in outs]
    return {"op": name, "output_shape": out_shapes[0] if out_shapes else [],
            "output_dtype": flatmodel.dtype_name(outs[0]) if outs else None,
            "macs": int(_macs(name, in_shapes, out_shapes)), "weight_bytes": int(weight),
            "act_in_bytes": int(act_in), "act_out_bytes": int(sum(flatmodel.tensor_bytes(t) for t in outs))}
