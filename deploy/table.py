"""The per-board table `make bench` prints: variant x threads -> latency, memory, accuracy."""
from __future__ import annotations


def _num(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _temperature_text(info: dict | None) -> str:
    """The hottest zone and throttling, from the facts bench stored in `deploy.info_*`."""
    if not info:
        return "-"
    temps = info.get("temperature_c") or {}
    t = max(temps.values()) if temps else None
    throttled = (info.get("throttling") or {}).get("throttled")
    text = f"{t:.1f} C" if isinstance(t, (int, float)) else "n/a"
    return text + (" THROTTLED" if throttled else "")


def render(doc: dict, variant_of) -> str:
    """Rows per run; INT8 speed-up is FP32's p50 over INT8's p50 at the same threads/XNNPACK."""
    p50 = {}
    for r in doc.get("results", []):
        for run in r.get("runs", []):
            p50[(variant_of(r["model"]), run["threads"], run["xnnpack"])] = run["p50_us"]
    header = ["variant", "threads", "xnnpack", "delegated", "p50 us", "p99 us", "peak MB", "top-1",
              "int8 speed-up"]
    rows = []
    for r in doc.get("results", []):
        name = variant_of(r["model"])
        model = r["model"]
        delegated = f"{model.get('ops_delegated')}/{model.get('ops_total')}" \
            if model.get("ops_total") is not None else "-"
        acc = (r.get("accuracy") or {}).get("top1")
        peak = (r.get("memory") or {}).get("peak_rss_mb")
        if r.get("status") != "ok" or not r.get("runs"):
            rows.append([name, "-", "-", delegated, "FAILED", "", "", "", ""])
            continue
        for run in r["runs"]:
            speedup = ""
            fp32 = p50.get(("fp32", run["threads"], run["xnnpack"]))
            if name == "int8" and fp32 and run["p50_us"]:
                speedup = f"{fp32 / run['p50_us']:.2f}x"
            rows.append([name, str(run["threads"]), "on" if run["xnnpack"] else "off", delegated,
                         _num(run["p50_us"]), _num(run["p99_us"]), _num(peak),
                         _num(acc, "{:.4f}"), speedup])
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    extra = doc.get("deploy", {})
    lines.append(f"temperature before {_temperature_text(extra.get('info_before'))}, "
                 f"after {_temperature_text(extra.get('info_after'))}; runtime "
                 f"{doc['runtime'].get('name')} {doc['runtime'].get('version')}")
    if doc.get("device", {}).get("emulated"):
        lines.append("EMULATED board (qemu-user): latency and memory above are not real hardware figures")
    return "\n".join(lines)
