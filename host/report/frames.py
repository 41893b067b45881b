"""The report's end-to-end part (`make bench VIDEO=clip.mp4`): per board and bundle, the frame
pipeline's fps, capture->result latency, drops, CPU and RSS per variant and thread count, and a
stacked bar of where a frame's time goes (the stage split). Kept apart from host/report/build.py,
which calls `section()` per result document."""
from __future__ import annotations

from pathlib import Path

from device.video.stats import STAGES


def entries(doc: dict) -> list:
    """(variant, end_to_end entry) of every model in the document that has them."""
    return [(r["variant"], e) for r in doc.get("results", []) for e in r.get("end_to_end") or []]


def _fmt(x, spec: str = ".1f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "–"


def table(doc: dict) -> list:
    rows = entries(doc)
    if not rows:
        return []
    spec = rows[0][1].get("source", {}).get("spec", "?")
    out = [f"### End to end: frames from `{spec}`", "",
           "| variant | threads | fps | latency p50 ms | latency p99 ms | dropped | overhead | CPU % | RSS MB |",
           "|---|---|---|---|---|---|---|---|---|"]
    for variant, e in rows:
        lat = e["latency_ms"]
        out.append(f"| {variant} | {e['threads']} | {_fmt(e['fps'])} | {_fmt(lat['p50'], '.2f')} | "
                   f"{_fmt(lat['p99'], '.2f')} | {e['dropped']} | {_fmt(100 * e['overhead'] if e['overhead'] is not None else None, '+.1f')} % | "
                   f"{_fmt(e['cpu_percent'])} | {_fmt(e['rss_mb'])} |")
    return out + [""]


def stage_plot(doc: dict, path: Path) -> str:
    """A horizontal stacked bar per variant and thread count: mean ms per stage."""
    from host.plots import pyplot, save_png
    plt = pyplot()
    rows = entries(doc)
    labels = [f"{v} ×{e['threads']}" for v, e in rows]
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(3, len(rows)) + 1.2))
    left = [0.0] * len(rows)
    colours = plt.get_cmap("tab10")
    for i, stage in enumerate(STAGES):
        widths = [e["stages_ms"].get(stage, {}).get("mean") or 0.0 for _, e in rows]
        ax.barh(labels, widths, left=left, color=colours(i), label=stage)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("mean ms per frame")
    ax.set_title("where a frame's time goes (frame pipeline, bench --source)")
    ax.legend(loc="lower right", fontsize="small")
    return save_png(fig, path)


def section(doc: dict, out: Path, slug: str) -> tuple:
    """(markdown lines, image names) for one result document; nothing without end-to-end figures."""
    lines = table(doc)
    if not lines:
        return [], []
    name = stage_plot(doc, out / f"stages_{slug}.png")
    return lines + [f"![{name}]({name})", ""], [name]
