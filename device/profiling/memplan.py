"""Static memory plan of a .tflite model: weights, tensor lifetimes and the activation arena.

Why: a user asks where a model's memory goes before (and after) putting it on a board. The file
alone answers most of it: constant buffers are the weights, and TFLite places every other tensor
of the main graph in one arena, planned the way `arena_planner.cc` + `simple_memory_arena.cc` do:

* lifetime: graph inputs from op 0 to the end (never overwritten), every other tensor from the op
  that produces it to the last op that reads it; graph outputs and tensors nobody reads to the end;
* order: tensors alive for the whole run first (by index), then by size, largest first, then by
  the op that produces them;
* placement: each tensor at the best-fitting 64-byte-aligned gap among the tensors already placed
  whose lifetimes overlap its own, else after the last of them.

Weights are the constant buffers; fp16/sparse weights that DEQUANTIZE/DENSIFY unpack once at load
are kept apart (`unpacked_weights_bytes`, persistent memory, not arena).
Not included (so the interpreter's real arena can differ a little): kernels' scratch buffers
(e.g. im2col), tensors TFLite shares in place (RESHAPE), subgraphs other than the first, and
what a delegate allocates (XNNPACK repacks the weights into its own buffers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

ALIGNMENT = 64   # TFLite's kDefaultTensorAlignment
_END = 1 << 62   # "never freed": alive until the end of the run


@dataclass
class Interval:
    """One tensor for the planner: its size and the ops at which it is first and last alive."""
    index: int
    bytes: int
    first: int
    last: int = _END


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _order(intervals: list) -> list:
    def key(t: Interval) -> tuple:
        whole_run = t.first == 0 and t.last == _END
        return (0, t.index, 0, 0) if whole_run else (1, -t.bytes, t.first, t.index)
    return sorted(intervals, key=key)


def place(intervals: list, alignment: int = ALIGNMENT) -> tuple:
    """Greedy size-ordered placement: (offsets by tensor index, arena bytes)."""
    placed = []   # (offset, size, first, last), kept sorted by offset
    offsets = {}
    for t in _order([i for i in intervals if i.bytes > 0]):
        best, best_fit, current = None, None, 0
        for offset, size, first, last in placed:
            if last < t.first or first > t.last:
                continue  # not alive at the same time: may share memory
            aligned = _align(current, alignment)
            if aligned + t.bytes <= offset and (best_fit is None or offset - aligned < best_fit):
                best, best_fit = aligned, offset - current
            current = max(current, offset + size)
            if best_fit == 0:
                break
        if best is None:
            best = _align(current, alignment)
        offsets[t.index] = best
        placed.append((best, t.bytes, t.first, t.last))
        placed.sort(key=lambda p: p[0])
    arena = max((o + s for o, s, _, _ in placed), default=0)
    return offsets, arena


def live_bytes(intervals: list, n_ops: int) -> list:
    """Bytes alive at each op (a tensor read by op i and one written by op i are both alive)."""
    return [sum(t.bytes for t in intervals if t.first <= i <= t.last) for i in range(n_ops)]


def intervals_of(model: Any) -> tuple:
    """(intervals of the first subgraph's arena tensors, weight bytes) of a flatmodel.read() model."""
    from device.profiling import flatmodel
    sg = model.subgraphs[0]
    ops = sg.operators or []
    tensors = sg.tensors or []
    weight_buffers = {}
    for g in model.subgraphs:
        for t in g.tensors or []:
            data = flatmodel.buffer_data(model, t)
            if data is not None:
                weight_buffers[t.buffer] = len(data)
    inputs = [int(i) for i in (sg.inputs if sg.inputs is not None else []) if i >= 0]
    outputs = [int(i) for i in (sg.outputs if sg.outputs is not None else []) if i >= 0]
    produced = set()
    first, last = {}, {}
    for i in inputs:
        first[i], last[i] = 0, _END
    for n, op in enumerate(ops):
        for i in (int(i) for i in (op.outputs if op.outputs is not None else [])):
            if i >= 0:
                first.setdefault(i, n)
                produced.add(i)
        for i in (int(i) for i in (op.inputs if op.inputs is not None else [])):
            if i >= 0:
                first.setdefault(i, 0)
                if last.get(i) != _END:
                    last[i] = n
    for i in outputs:
        first.setdefault(i, 0)
        last[i] = _END
    from device.profiling.opcut import weight_ops
    unpacked = set(weight_ops(model).values())
    out = []
    for i in sorted(first):
        t = tensors[i]
        if flatmodel.buffer_data(model, t) is not None or flatmodel.is_external(model, t) or t.isVariable \
                or i in unpacked:
            continue  # weights (mapped from the file, or unpacked once at load) and variables (persistent)
        end = last.get(i, _END if i in produced or i in inputs else first[i])
        out.append(Interval(i, flatmodel.tensor_bytes(t), first[i], end))
    return out, sum(weight_buffers.values())


def plan(model: Any, top: Optional[int] = None) -> dict:
    """The memory_plan block of a result (see docs/contracts.md)."""
    from device.profiling import flatmodel
    from device.profiling.opcut import weight_ops
    sg = model.subgraphs[0]
    ops = sg.operators or []
    intervals, weights = intervals_of(model)
    offsets, arena = place(intervals)
    live = live_bytes(intervals, len(ops))
    peak = max(range(len(ops)), key=lambda i: live[i]) if ops else None
    last_op = max(len(ops) - 1, 0)

    def name(i: int) -> str:
        raw = sg.tensors[i].name
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")

    def row(t: Interval) -> dict:
        return {"index": t.index, "name": name(t.index), "bytes": t.bytes,
                "dtype": flatmodel.dtype_name(sg.tensors[t.index]), "shape": flatmodel.shape(sg.tensors[t.index]),
                "first_op": t.first, "last_op": min(t.last, last_op), "offset": offsets.get(t.index)}

    at_peak = [row(t) for t in intervals if peak is not None and t.first <= peak <= t.last]
    at_peak.sort(key=lambda r: -r["bytes"])
    return {
        "arena_bytes": int(arena),
        "weights_bytes": int(weights),
        "unpacked_weights_bytes": int(sum(flatmodel.tensor_bytes(sg.tensors[t]) for t in
                                          weight_ops(model).values())),
        "activations_total_bytes": int(sum(t.bytes for t in intervals)),
        "peak_op": peak,
        "peak_op_type": flatmodel.op_name(model, ops[peak]) if peak is not None else None,
        "peak_live_bytes": int(live[peak]) if peak is not None else 0,
        "live_at_peak": at_peak,
        "tensors": [row(t) for t in sorted(intervals, key=lambda t: t.index)][:top],
        "alignment": ALIGNMENT,
        "subgraphs": len(model.subgraphs),
        "ops": len(ops),
    }


def plan_file(path: str, preferred: Optional[str] = None) -> dict:
    """plan() of a .tflite file (what host/pipeline/bundle.py records per variant)."""
    from device.profiling import flatmodel
    return plan(flatmodel.read(path, preferred))
