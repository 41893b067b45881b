"""`make report`: reports/benchmark_report.md (+ PNG plots) from every stored result.

Only schema-valid results are used; for each board and bundle the newest result counts. Results
measured under emulation are labelled as such everywhere, because their latency says nothing
about a real board.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.contract import results as resultdoc
from device.contract.fileio import atomic_write_text, safe_name
from host.config import ARTIFACTS, REPORTS, RESULTS
from host.plots import pyplot, save_png
from host.report.model import model_lines
from host.report.tasks import task_lines


@dataclass
class Row:
    """One model variant x thread setting on one board: the unit every table and plot uses."""
    board: str
    bundle: str
    variant: str
    threads: int
    xnnpack: bool
    run: dict
    result: dict
    doc: dict
    host_top1: float | None


def load_results(root: Path = RESULTS) -> tuple[list[tuple[Path, dict]], list[str]]:
    """Newest valid result per (board, bundle); invalid files are listed, never used."""
    newest: dict[tuple[str, str], tuple[Path, dict, tuple]] = {}
    skipped: list[str] = []
    for path in sorted(root.glob("**/*.json")):
        if "rejected" in path.relative_to(root).parts:
            continue
        try:
            doc = resultdoc.load(str(path))
        except (ValueError, OSError) as exc:
            skipped.append(str(exc).splitlines()[0] if str(exc) else f"{path}: {type(exc).__name__}")
            continue
        if doc.get("command") != "bench":
            continue
        key = (resultdoc.board_name(doc), resultdoc.bundle_name(doc))
        # "Newest" by the host's clock (the file name starts with the UTC time it was received),
        # not the board's: a board with a wrong clock must not hide its newer results.
        received = (path.name[:16], path.stat().st_mtime_ns)  # YYYYmmddTHHMMSSZ, then write order
        if key not in newest or received > newest[key][2]:
            newest[key] = (path, doc, received)
    return [newest[k][:2] for k in sorted(newest)], skipped


def _manifest(bundle: str) -> dict:
    path = ARTIFACTS / bundle / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def rows_of(docs: list[tuple[Path, dict]]) -> list[Row]:
    rows = []
    for _, doc in docs:
        bundle = resultdoc.bundle_name(doc)
        manifest = _manifest(bundle)
        for res, run in resultdoc.runs(doc):
            # Prefer the host accuracy the agent read from the manifest it actually ran with.
            host = (res.get("accuracy") or {}).get("host_top1")
            entry = manifest.get("variants", {}).get(res["variant"], {})
            if host is None:         # a classifier's, else a raw model's top-1 on its npz labels
                host = entry.get("host_top1")
            if host is None:
                host = (entry.get("host_metric") or {}).get("top1")
            variant, threads, xnnpack = resultdoc.run_key(res, run)
            rows.append(Row(resultdoc.board_name(doc), bundle, variant, threads, xnnpack, run, res, doc, host))
    return rows


def _fmt(x, spec: str = ".1f", none: str = "–") -> str:
    return none if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _baseline(rows: list[Row], r: Row) -> Row | None:
    for o in rows:
        if (o.board, o.bundle, o.variant, o.threads, o.xnnpack) == (r.board, r.bundle, "fp32", r.threads, r.xnnpack):
            return o
    return None


def board_table(rows: list[Row]) -> list[str]:
    """Sizes and ratios computed here; every measured column comes from device.contract.results.METRICS."""
    metrics = [m for m in resultdoc.METRICS if not m.optional or any(m.get(r.result, r.run) is not None for r in rows)]
    out = ["| variant | threads | XNNPACK | size KB | ×FP32 size | host top-1 % | "
           + " | ".join(m.label for m in metrics) + " | speed-up vs FP32 | delegated ops | runtime |",
           "|---" * (9 + len(metrics)) + "|"]
    for r in sorted(rows, key=lambda r: (r.variant != "fp32", r.variant, not r.xnnpack, r.threads)):
        base = _baseline(rows, r)
        m = r.result["model"]
        size_ratio = m["size_bytes"] / base.result["model"]["size_bytes"] if base else None
        speed = base.run["p50_us"] / r.run["p50_us"] if base else None
        measured = " | ".join(resultdoc.metric_text(x, r.result, r.run) for x in metrics)
        out.append(f"| {r.variant} | {r.threads} | {'on' if r.xnnpack else 'off'} | {m['size_bytes'] / 1024:.1f} | "
                   f"{_fmt(size_ratio, '.3f')} | {_pct(r.host_top1)} | {measured} | {_fmt(speed, '.2f')}× | "
                   f"{r.run.get('ops_delegated', m['ops_delegated'])}/{m['ops_total']} | "
                   f"{resultdoc.runtime_of(r.result, r.doc)} |")
    return out


def headline(rows: list[Row], board: str, bundle: str) -> str | None:
    """'INT8 is N× smaller and M× faster than FP32 on <board>, accuracy delta D pp' — measured."""
    def pick(v):
        cands = [r for r in rows if (r.board, r.bundle, r.variant, r.xnnpack) == (board, bundle, v, True)]
        return min(cands, key=lambda r: r.threads) if cands else None
    i8, f32 = pick("int8"), pick("fp32")
    if not i8 or not f32:
        return None
    smaller = f32.result["model"]["size_bytes"] / i8.result["model"]["size_bytes"]
    faster = f32.run["p50_us"] / i8.run["p50_us"]
    a8, a32 = (i8.result.get("accuracy") or {}).get("top1"), (f32.result.get("accuracy") or {}).get("top1")
    delta = f"{100 * (a8 - a32):+.2f} pp" if a8 is not None and a32 is not None else "not measured"
    emu = " (EMULATED: latency not representative)" if i8.doc["device"].get("emulated") else ""
    speed = f"{faster:.2f}× faster" if faster >= 1 else f"{1 / faster:.2f}× slower"   # never "0.80× faster"
    return (f"INT8 is {smaller:.1f}× smaller and {speed} than FP32 on {board} "
            f"({i8.threads} thread{'s' if i8.threads > 1 else ''}, XNNPACK), accuracy delta {delta}{emu}.")


def _plots(rows: list[Row], out: Path, slug: str) -> list[str]:
    plt = pyplot()

    made = []
    one = [r for r in rows if r.xnnpack and r.threads == min(x.threads for x in rows)]
    samples = [(f"{r.variant}", r.run.get("samples_us") or []) for r in sorted(one, key=lambda r: r.variant)]
    samples = [(n, s) for n, s in samples if s]
    if samples:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.boxplot([s for _, s in samples], showfliers=True, whis=(1, 99))
        ax.set_xticks(range(1, len(samples) + 1), [n for n, _ in samples])
        ax.set_ylabel("latency per inference (µs)")
        emu = " — EMULATED" if one[0].doc["device"].get("emulated") else ""
        ax.set_title(f"{slug}{emu}\nlatency, {one[0].threads} thread, XNNPACK (whiskers p1–p99)", fontsize=10)
        made.append(save_png(fig, out / f"latency_{slug}.png"))
    by_variant: dict[str, list[Row]] = {}
    for r in rows:
        if r.xnnpack:
            by_variant.setdefault(r.variant, []).append(r)
    if any(len({r.threads for r in v}) > 1 for v in by_variant.values()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for v, rs in sorted(by_variant.items()):
            rs = sorted(rs, key=lambda r: r.threads)
            ax.plot([r.threads for r in rs], [r.run["p50_us"] for r in rs], marker="o", label=v)
        ax.set_xlabel("threads"), ax.set_ylabel("p50 latency (µs)"), ax.legend()
        ax.set_title(f"{slug}: thread scaling")
        made.append(save_png(fig, out / f"threads_{slug}.png"))
    return made


def _tradeoff(rows: list[Row], out: Path) -> str | None:
    plt = pyplot()

    pts = [r for r in rows if r.xnnpack and r.threads == 1 and (r.result.get("accuracy") or {}).get("top1") is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in pts:
        size_kb = r.result["model"]["size_bytes"] / 1024
        ax.scatter(r.run["p50_us"], 100 * r.result["accuracy"]["top1"], s=max(20, size_kb / 4), alpha=0.6)
        ax.annotate(f"{r.variant}@{r.board}" + (" (emu)" if r.doc["device"].get("emulated") else ""),
                    (r.run["p50_us"], 100 * r.result["accuracy"]["top1"]), fontsize=7)
    acc = [100 * r.result["accuracy"]["top1"] for r in pts]
    ax.set_ylim(max(0.0, min(acc) - 1.0), min(100.0, max(acc) + 0.5))  # a 0.1 pp gap must look small
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, 1 thread (µs, log)"), ax.set_ylabel("on-device top-1 (%)")
    ax.set_title("accuracy vs latency (marker area ∝ model size)")
    return save_png(fig, out / "tradeoff.png")


def _slug(text: str) -> str:
    return safe_name(text)


def build_report(results: Path = RESULTS, out: Path = REPORTS) -> tuple[str, list[str]]:
    out.mkdir(parents=True, exist_ok=True)
    docs, skipped = load_results(results)
    rows = rows_of(docs)
    md = ["# edgekit benchmark report", ""]
    if not docs:
        md += [f"No valid results under `{results}/`: run `make bench HOST=...` first.", ""]
    pairs = sorted({(r.board, r.bundle, bool(r.doc["device"].get("emulated"))) for r in rows})
    heads = [h for (b, u, emu) in pairs if not emu and (h := headline(rows, b, u))]
    emulated = [h for (b, u, emu) in pairs if emu and (h := headline(rows, b, u))]
    if heads:
        md += ["## Headlines", ""] + [f"- {h}" for h in heads] + [""]
    if emulated:
        md += ["## Emulated boards (not board figures: ARM code path and accuracy only)", ""] + \
              [f"- {h}" for h in emulated] + [""]
    images: list[str] = []
    for path, doc in docs:
        board, bundle = resultdoc.board_name(doc), resultdoc.bundle_name(doc)
        mine = [r for r in rows if (r.board, r.bundle) == (board, bundle)]
        dev, rt = doc["device"], doc["runtime"]
        md += [f"## {board} — bundle `{bundle}`", ""]
        if dev.get("emulated"):
            md += [f"> **Emulated board** ({dev.get('emulator') or 'qemu'}): latency and memory figures are not "
                   "those of real hardware; accuracy (and the ARM code path) are.", ""]
        dep = doc.get("deploy", {})
        md += [f"- device: {dev.get('arch')}, {dev.get('cpu_model') or '?'}, {dev.get('cpu_count')} cores, "
               f"{_fmt(dev.get('ram_total_mb'), '.0f')} MB RAM, {dev.get('os') or 'OS ?'}, Python {dev.get('python')}, "
               f"NumPy {dev.get('numpy') or '?'}",
               f"- runtime: {rt.get('name')} {rt.get('version')}; agent {doc['agent']['version']}; "
               f"profile {dep.get('profile', '–')}",
               f"- temperature before/after: {resultdoc.thermal_text(dep.get('info_before'))} / {resultdoc.thermal_text(dep.get('info_after'))}",
               f"- measured from {doc['started_utc']}; file `{path}`"]
        md += model_lines(_manifest(bundle), doc)
        load = (dep.get("info_before") or {}).get("load_avg") or dev.get("load_avg")
        if load and dev.get("cpu_count") and load[0] > 0.5 * dev["cpu_count"]:
            md.append(f"- **busy board**: load average {load[0]:.2f} on {dev['cpu_count']} cores before the run; "
                      "other processes may have disturbed the figures (multi-thread runs most)")
        md.append("")
        md += board_table(mine) + [""]
        from host.report import frames as report_frames   # `make bench VIDEO=...`: the end-to-end figures
        more, pics = report_frames.section(doc, out, _slug(f"{board}_{bundle}"))
        md, images = md + more, images + pics
        md += task_lines(path, ARTIFACTS / bundle, _manifest(bundle), doc)
        for w in list(dict.fromkeys(doc.get("warnings", [])))[:10]:  # each distinct warning once
            md.append(f"- warning: {w}")
        for r in resultdoc.failed(doc):
            md.append(f"- FAILED {r['model']['name']}: {(r.get('error') or {}).get('message', '?')}")
        if mine:
            pics = _plots(mine, out, _slug(f"{board}_{bundle}"))
            images += pics
            md += [""] + [f"![{p}]({p})" for p in pics] + [""]
    boards = sorted({r.board for r in rows})
    if len(boards) > 1:
        md += ["## Across boards (1 thread, XNNPACK, p50 µs)", "",
               "| bundle | variant | " + " | ".join(boards) + " |", "|---|---|" + "---|" * len(boards)]
        for bundle, variant in sorted({(r.bundle, r.variant) for r in rows}):
            cells = []
            for b in boards:
                m = [r for r in rows if (r.board, r.bundle, r.variant, r.threads, r.xnnpack) == (b, bundle, variant, 1, True)]
                cells.append(f"{m[0].run['p50_us']:.1f}" + (" (emu)" if m[0].doc["device"].get("emulated") else "")
                             if m else "–")
            md.append(f"| {bundle} | {variant} | " + " | ".join(cells) + " |")
        md.append("")
    from host.report import profile as report_profile  # `make profile` results: top operators, time by type, memory plan
    more, pics = report_profile.section(results, out, docs)
    md, images = md + more, images + pics
    trade = _tradeoff(rows, out)
    if trade:
        images.append(trade)
        md += ["## Accuracy vs latency vs size", "", f"![{trade}]({trade})", ""]
    for bundle in sorted({r.bundle for r in rows}):
        curve = ARTIFACTS / bundle / "training_curve.png"
        if curve.is_file():
            name = f"training_{_slug(bundle)}.png"
            shutil.copyfile(curve, out / name)
            images.append(name)
            md += [f"## Training curve: `{bundle}`", "", f"![{name}]({name})", ""]
    from host.report.search import section as search_section

    search_md, search_images = search_section(out)
    md += search_md
    images += search_images
    if skipped:
        md += ["## Skipped result files (not schema-valid)", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(md), images


def to_html(md: str, out: Path) -> str:
    """A single self-contained HTML file (markdown-it-py, GitHub tables), the plots inlined."""
    from markdown_it import MarkdownIt

    def inline(match: re.Match) -> str:
        path = out / match.group(2)
        if not path.is_file():
            return match.group(0)
        return f"![{match.group(1)}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"

    body = MarkdownIt("commonmark").enable("table").render(re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, md))
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}")
    return f"<!doctype html><meta charset=utf-8><title>edgekit report</title><style>{style}</style>\n{body}"


def write_report(html: bool = False, results: Path = RESULTS, out: Path = REPORTS) -> Path:
    md, images = build_report(results, out)
    path = out / "benchmark_report.md"
    atomic_write_text(path, md)
    print(f"report: {path} ({len(images)} plots)")
    if html:
        hp = out / "benchmark_report.html"
        atomic_write_text(hp, to_html(md, out))
        print(f"report: {hp}")
    return path
