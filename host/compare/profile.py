"""`make compare` on two profile results: which operators' p50 moved beyond the threshold.

Operators are matched by variant, index and op type (the same graph). A move is listed when it is
beyond the threshold of the operator's own p50 AND beyond 0.5 % of the whole model's p50, so the
jitter of sub-microsecond operators is not listed. Per-operator figures keep no raw samples, so
these moves are information beside the gate; the gate itself (exit code) stays the whole model's.
"""
from __future__ import annotations

FLOOR_OF_WHOLE = 0.005


def op_moves(a: dict, b: dict, threshold_pct: float) -> list[dict]:
    def index(doc: dict) -> dict:
        out = {}
        for res in doc.get("results", []):
            if res.get("status") == "ok" and res.get("profile"):
                for o in res["profile"]["ops"]:
                    out[(res.get("variant"), o["index"], o["op"])] = (o, res["profile"])
        return out
    ia, ib = index(a), index(b)
    moves = []
    for key in sorted(set(ia) & set(ib), key=lambda k: (str(k[0]), k[1])):
        (oa, pa), (ob, _) = ia[key], ib[key]
        if oa["latency_us"] is None or ob["latency_us"] is None:
            continue
        delta = ob["latency_us"] - oa["latency_us"]
        floor = FLOOR_OF_WHOLE * (pa.get("whole_p50_us") or 0)
        base = oa["latency_us"]
        if abs(delta) > floor and (base == 0 or abs(delta) > threshold_pct / 100 * base):
            moves.append({"variant": key[0], "index": key[1], "op": key[2], "a_us": base, "b_us": ob["latency_us"],
                          "change_pct": 100 * delta / base if base else None})
    return moves


def render(a: dict, b: dict, threshold_pct: float) -> str:
    """'' when either document is not a profile; else the moved operators (or that none moved)."""
    if a.get("command") != "profile" or b.get("command") != "profile":
        return ""
    moves = op_moves(a, b, threshold_pct)
    if not moves:
        return f"\noperators: none moved beyond {threshold_pct:g} % (and 0.5 % of the whole model)"
    lines = [f"\noperators whose p50 moved beyond {threshold_pct:g} % (information; the gate is the whole model's):",
             f"{'variant':<10} {'op#':>4} {'op':<20} {'A us':>9} {'B us':>9} {'change':>9}"]
    for m in moves:
        change = f"{m['change_pct']:+8.1f}%" if m["change_pct"] is not None else "      new"
        lines.append(f"{str(m['variant']):<10} {m['index']:>4} {m['op']:<20} {m['a_us']:>9.2f} {m['b_us']:>9.2f} {change}")
    return "\n".join(lines)
