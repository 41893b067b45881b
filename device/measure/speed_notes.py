"""One-line warnings for figures that do not mean what a reader expects: a model XNNPACK took only
part of, and an INT8 model slower than its FP32 twin measured in the same run, each with its
likely cause (bench prints them, the report shows them).

Why in the agent: the board is where the figures are made; a user who benches fp32.tflite and
int8.tflite side by side should be told there and then, not by reading a table.
"""
from __future__ import annotations

from typing import Optional

# Below this FP32 p50 a model is mostly the fixed cost of invoke() (and the Python call around it):
# INT8 has little compute left to save.
TINY_P50_US = 50.0


def partly_delegated(name: str, model: dict) -> Optional[str]:
    """`name: N/M ops on XNNPACK; left on the builtin kernels: OP (why); ...`, or None when all are."""
    total, taken = model.get("ops_total"), model.get("ops_delegated")
    if not total or not taken or taken == total:
        return None
    why = model.get("not_delegated_why") or {}
    left = "; ".join(f"{op} x{n} ({why[op]})" if op in why else f"{op} x{n}"
                     for op, n in sorted((model.get("ops_not_delegated") or {}).items()))
    kind = "INT8 model" if model.get("quantized") else "model"
    return (f"{name}: {kind} only partly delegated to XNNPACK ({taken}/{total} ops); "
            f"left on the builtin kernels: {left}")


def _twin(q: dict, results: list) -> Optional[dict]:
    """The unquantised result with the same input shape (fp32 by variant name first)."""
    shape = [i["shape"] for i in q["model"].get("inputs") or []]
    same = [r for r in results if r.get("status") == "ok" and r["model"].get("quantized") is False
            and [i["shape"] for i in r["model"].get("inputs") or []] == shape]
    same.sort(key=lambda r: r.get("variant") != "fp32")
    return same[0] if same else None


def _cause(q: dict, f_p50: float, xnnpack: bool) -> str:
    model = q["model"]
    dtypes = {t.get("dtype") for t in (model.get("inputs") or []) + (model.get("outputs") or [])}
    if "uint8" in dtypes:
        return "per-tensor uint8 quantisation (slow or unsupported on XNNPACK; convert to per-channel int8)"
    if xnnpack and model.get("ops_total") and (model.get("ops_delegated") or 0) < model["ops_total"]:
        left = ", ".join(sorted(model.get("ops_not_delegated") or {}))
        return f"unsupported ops left on the builtin kernels ({left}): each leaves XNNPACK and comes back"
    if f_p50 < TINY_P50_US:
        return (f"a tiny model dominated by invoke overhead (FP32 p50 {f_p50:.1f} us < {TINY_P50_US:g} us): "
                "INT8 has little compute to save")
    if not xnnpack:
        return "the builtin kernels (no XNNPACK): their INT8 kernels are the slower reference ones"
    return ("ops INT8 runs no faster than FP32 dominate (depthwise convs, convs on 1-3 input channels); "
            "`make profile` gives each op's time")


def int8_slower(results: list) -> list:
    """(result, warning) for each INT8 result slower than its FP32 twin at the same threads /
    XNNPACK setting (one line per model: the first setting it is slower at)."""
    out = []
    for q in results:
        if q.get("status") != "ok" or not q["model"].get("quantized"):
            continue
        f = _twin(q, results)
        if f is None:
            continue
        base = {(r["threads"], r["xnnpack"]): r["p50_us"] for r in f.get("runs") or []}
        for run in q.get("runs") or []:
            f_p50 = base.get((run["threads"], run["xnnpack"]))
            if f_p50 is None or run["p50_us"] <= f_p50:
                continue
            setting = f"{run['threads']} thread{'s' if run['threads'] != 1 else ''}" + \
                ("" if run["xnnpack"] else ", no XNNPACK")
            out.append((q, f"{q['model']['name']}: INT8 p50 {run['p50_us']:.1f} us is slower than "
                       f"{f['model']['name']} (FP32) {f_p50:.1f} us ({run['p50_us'] / f_p50:.2f}x, {setting}); "
                       f"likely cause: {_cause(q, f_p50, run['xnnpack'])}"))
            break
    return out
