"""The per-board table `make bench` prints: variant x threads -> latency, memory, accuracy."""
from __future__ import annotations

from device.contract import results


def _num(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


_FLOAT_OF = {"int8": "fp32", "ort_int8": "ort_fp32"}   # each runtime's INT8 against its own FP32


def _runtimes(doc: dict) -> str:
    """Every runtime the results ran on, with its version (one run may hold LiteRT and ONNX Runtime)."""
    versions = {r.get("name"): r.get("version") for r in (doc.get("device") or {}).get("runtimes_available") or []}
    versions.setdefault(doc["runtime"].get("name"), doc["runtime"].get("version"))
    names = list(dict.fromkeys(r.get("runtime") or doc["runtime"].get("name") for r in doc.get("results", [])))
    return ", ".join(f"{n} {versions.get(n)}" for n in names or [doc["runtime"].get("name")])


def render(doc: dict) -> str:
    """Rows per run; INT8 speed-up is FP32's p50 over INT8's p50 at the same threads/XNNPACK.
    A task model's eval adds its post-processing p50 (measured at the eval's settings)."""
    index = results.run_index(doc)
    header = ["variant", "threads", "xnnpack", "delegated", "p50 us", "p99 us", "peak MB", "top-1",
              "int8 speed-up"]
    with_post = any(results.post_p50(r) is not None for r in doc.get("results", []))
    if with_post:
        header.insert(6, "post p50 us")
    rows = []
    for r in doc.get("results", []):
        name, model = r["variant"], r["model"]
        delegated = f"{model.get('ops_delegated')}/{model.get('ops_total')}" \
            if model.get("ops_total") is not None else "-"
        if r.get("status") != "ok" or not r.get("runs"):
            rows.append([name, "-", "-", delegated, "FAILED", "", "", "", ""] + ([""] if with_post else []))
            continue
        for run in r["runs"]:
            speedup = ""
            fp32 = index.get((_FLOAT_OF.get(name, ""), run["threads"], run["xnnpack"]))
            if fp32 and run["p50_us"]:
                speedup = f"{fp32[1]['p50_us'] / run['p50_us']:.2f}x"
            row = [name, str(run["threads"]), "on" if run["xnnpack"] else "off", delegated,
                   _num(run["p50_us"]), _num(run["p99_us"]), _num(results.peak_rss_mb(r)),
                   _num(results.top1(r), "{:.4f}"), speedup]
            if with_post:
                row.insert(6, _num(results.post_p50(r)))
            rows.append(row)
    cells = [header] + rows
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    from device.video.stats import end_to_end_line
    lines += [f"{r['variant']} {end_to_end_line(e)}" for r in doc.get("results", []) for e in r.get("end_to_end") or []]
    extra = doc.get("deploy", {})
    lines.append(f"temperature before {results.thermal_text(extra.get('info_before'))}, "
                 f"after {results.thermal_text(extra.get('info_after'))}; runtime {_runtimes(doc)}")
    if doc.get("device", {}).get("emulated"):
        lines.append("EMULATED board (qemu-user): latency and memory above are not real hardware figures")
    return "\n".join(lines)
