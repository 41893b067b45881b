"""The model search's picture (pareto.png) and its section in `make report`.

Kept apart from host/report/build.py, which only calls `section`: a search's leaderboard is not a
board result and has its own reader here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from host.config import ARTIFACTS


def plot_pareto(lb: dict, path: Path) -> Path:
    """Accuracy (INT8 test top-1, host) against re-measured p50; marker area = INT8 size; budget
    lines; winner starred; the default model as a reference; the candidates that never reached the
    final rung as a rug at their untrained p50 (red: over budget, grey: within it)."""
    from host.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    budgets = lb.get("budgets", {})
    done = [c for c in lb["candidates"] if c.get("int8") and (c.get("final") or {}).get("p50_us")]
    sizes = [c["int8"]["size_bytes"] / 1024 for c in done] or [1.0]
    scale = 400.0 / max(sizes)
    front = set(lb.get("pareto", []))
    for c in done:
        colour = "tab:green" if c["status"] == "winner" else "tab:blue" if c["status"] == "finalist" else "tab:red"
        ax.scatter(c["final"]["p50_us"], 100 * c["int8"]["host_top1"], s=max(20.0, scale * c["int8"]["size_bytes"] / 1024),
                   c=colour, alpha=0.55, edgecolors="black" if c["id"] in front else "none")
        ax.annotate(c["id"], (c["final"]["p50_us"], 100 * c["int8"]["host_top1"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    pts = sorted((c["final"]["p50_us"], 100 * c["int8"]["host_top1"]) for c in done if c["id"] in front)
    if len(pts) > 1:
        ax.plot(*zip(*pts), color="grey", lw=0.8, ls="--", label="Pareto front")
    win = next((c for c in done if c["status"] == "winner"), None)
    if win:
        ax.scatter(win["final"]["p50_us"], 100 * win["int8"]["host_top1"], marker="*", s=260, c="gold",
                   edgecolors="black", zorder=5, label=f"winner {win['id']}")
    ref = lb.get("reference") or {}
    if ref.get("p50_us") and ref.get("top1") is not None:
        ax.scatter(ref["p50_us"], 100 * ref["top1"], marker="D", s=60, c="black", zorder=5,
                   label="default model")
    lo = ax.get_ylim()[0]
    for statuses, colour, label in ((("over budget",), "tab:red", "over budget before training"),
                                    (("not trained", "halved"), "tab:grey", "within budget, not finalised")):
        rug = [(c.get("short") or {}).get("p50_us") for c in lb["candidates"]
               if c["status"] in statuses and c.get("stage") != "finalist"]
        rug = [x for x in rug if x]
        if rug:
            ax.scatter(rug, [lo] * len(rug), marker="|", s=120, c=colour, label=label)
    if "max_p50_us" in budgets:
        ax.axvline(budgets["max_p50_us"], color="tab:red", ls=":", label=f"p50 budget {budgets['max_p50_us']:g} us")
    if "min_top1" in budgets:
        ax.axhline(100 * budgets["min_top1"], color="tab:orange", ls=":", label=f"top-1 budget {100 * budgets['min_top1']:g} %")
    emulated = any((c.get("final") or c.get("short") or {}).get("emulated") for c in lb["candidates"])
    ax.set_xlabel(f"p50 latency on {lb.get('board', '?')}{' (EMULATED)' if emulated else ''}, us "
                  f"({lb['plan']['threads']} thread{'s' if lb['plan']['threads'] > 1 else ''})")
    ax.set_ylabel("INT8 test top-1 (host), %")
    ax.set_title(f"search {lb['name']}: accuracy vs latency (marker size = INT8 size)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    if not done:
        ax.text(0.5, 0.5, "no candidate was trained and measured", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path, dpi=110)
    return path


def section(out: Path, artifacts: Path = ARTIFACTS) -> tuple[list[str], list[str]]:
    """Markdown lines and copied image names for every artifacts/search-*/leaderboard.json."""
    md: list[str] = []
    images: list[str] = []
    for path in sorted(artifacts.glob("search-*/leaderboard.json")):
        try:
            lb = json.loads(path.read_text())
            cands = lb["candidates"]
        except (ValueError, KeyError):
            continue
        win = next((c for c in cands if c.get("status") == "winner"), None)
        budgets = ", ".join(f"{k} {v:g}" for k, v in lb.get("budgets", {}).items())
        md += [f"## Model search `{lb['name']}` on {lb.get('board', '?')} ({lb['plan']['dataset']})", "",
               f"- budgets: {budgets}; {len(cands)} candidates, "
               f"{sum(1 for c in cands if c.get('short'))} measured before training, "
               f"{sum(1 for c in cands if c.get('train'))} trained; leaderboard `{path}`"]
        if win:
            f = win["final"]
            dev = "–" if f.get("device_top1") is None else f"{100 * f['device_top1']:.2f} %"
            md.append(f"- winner **{win['id']}**: p50 {f['p50_us']:.1f} us, p99 {f['p99_us']:.1f} us, peak RSS "
                      f"{f['peak_rss_mb']:.1f} MB, INT8 {win['int8']['size_bytes'] / 1024:.1f} KB, top-1 "
                      f"{100 * win['int8']['host_top1']:.2f} % host / {dev} board -> `artifacts/{lb['name']}/`")
        else:
            md.append("- no candidate met every budget")
        finalists = [c for c in cands if c.get("val_interval")]
        if finalists:       # what picked the winner: accuracy with its uncertainty, not one split's figure
            md.append("- finalists by validation top-1 (95 % interval; ties go to the faster): " + ", ".join(
                f"{c['id']} {100 * sum(c['val_interval']) / 2:.2f} % [{100 * c['val_interval'][0]:.2f}, "
                f"{100 * c['val_interval'][1]:.2f}]" for c in sorted(finalists, key=lambda c: -sum(c["val_interval"]))))
        md.append("")
        pic = path.parent / "pareto.png"
        if pic.is_file():
            name = f"search_{lb['name']}.png"
            shutil.copyfile(pic, out / name)
            images.append(name)
            md += [f"![{name}]({name})", ""]
    return md, images
