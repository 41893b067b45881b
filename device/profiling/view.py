"""The human view of a profile result (the agent's table and `make profile`'s output).

Kept apart from device/profiling/profile.py so the table printer (device/report.py) can show it without
importing the profiler, which itself reports progress through device/report.py.
"""
from __future__ import annotations

from typing import Any


def render(result: dict, table: Any, top: int = 10) -> str:
    """The human view: the most expensive operators, time by op type, the check figure, the plan."""
    prof, plan = result.get("profile") or {}, result.get("memory_plan") or {}
    lines = []
    ops = prof.get("ops") or []
    if ops:
        ranked = sorted(ops, key=lambda o: -(o["latency_us"] if o["latency_us"] is not None else -1))[:top]
        rows = [[o["index"], o["op"], "yes" if o["delegated"] else "no", "x".join(map(str, o["output_shape"])),
                 o["output_dtype"], o["macs"], o["weight_bytes"], o["latency_us"], o["p90_us"],
                 f"{100 * o['share']:.1f}" if o.get("share") is not None else "-",
                 o.get("reason") or ""] for o in ranked]
        lines.append(table(rows, ["op#", "op", "xnnpack", "output", "dtype", "MACs", "weights B", "p50 us",
                                  "p90 us", "share %", "not timed because"]))
        lines.append(table([[r["op"], r["count"], r["latency_us"], f"{100 * r['share']:.1f}" if r.get("share")
                             is not None else "-", r["macs"]] for r in prof.get("by_type", [])],
                           ["op type", "count", "p50 us", "share %", "MACs"]))
        ratio = prof.get("ratio")
        lines.append(f"sum of operators {prof.get('sum_p50_us')} us (incl. one invoke's fixed cost "
                     f"{prof.get('invoke_overhead_us')} us) vs whole model {prof.get('whole_p50_us')} us"
                     + (f": ratio {ratio:.2f}" if ratio else ""))
    if plan:
        mem = result.get("memory") or {}
        peak = plan.get("peak_op")
        lines.append(f"memory plan: weights {plan['weights_bytes'] / 1024:.1f} KB, activation arena "
                     f"{plan['arena_bytes'] / 1024:.1f} KB (peak at op {peak} {plan.get('peak_op_type') or ''}, "
                     f"{len(plan.get('live_at_peak') or [])} tensors live); measured model share of RSS "
                     f"{mem.get('model_mb')} MB")
    return "\n".join(lines)
