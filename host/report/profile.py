"""The report's operator-profile part: for each board and bundle profiled (`make profile`), per
variant the ten most expensive operators, time by op type (bar chart), and the static memory
plan beside the measured memory. Kept apart from host/report/build.py, which calls `section()`.
"""
from __future__ import annotations

from pathlib import Path

from device.contract import results


def load_profiles(root: Path) -> list[tuple[Path, dict]]:
    """Newest valid profile result per (board, bundle), by the host's receive time (file name)."""
    newest: dict[tuple[str, str], tuple[Path, dict, tuple]] = {}
    for path in sorted(root.glob("**/*-profile*.json")):
        if "rejected" in path.relative_to(root).parts:
            continue
        try:
            doc = results.load(str(path))
        except (ValueError, OSError):
            continue  # the bench part of the report lists invalid files already
        if doc.get("command") != "profile":
            continue
        key = (results.board_name(doc), results.bundle_name(doc))
        received = (path.name[:16], path.stat().st_mtime_ns)
        if key not in newest or received > newest[key][2]:
            newest[key] = (path, doc, received)
    return [newest[k][:2] for k in sorted(newest)]


def _kb(n) -> str:
    return f"{n / 1024:.1f}" if isinstance(n, (int, float)) else "–"


def _us(x) -> str:
    return f"{x:.1f}" if isinstance(x, (int, float)) else "–"


def top_ops_table(prof: dict, top: int = 10) -> list[str]:
    ops = sorted((o for o in prof["ops"] if o["latency_us"] is not None), key=lambda o: -o["latency_us"])[:top]
    out = ["| # | op | XNNPACK | output | MACs | weights KB | p50 µs | p90 µs | share |",
           "|---|---|---|---|---|---|---|---|---|"]
    for o in ops:
        part = f" (partition {o['partition']})" if o.get("partition") is not None else ""
        out.append(f"| {o['index']} | {o['op']} | {'yes' + part if o['delegated'] else 'no'} | "
                   f"{'×'.join(map(str, o.get('output_shape') or []))} {o.get('output_dtype') or ''} | "
                   f"{o['macs']:,} | {_kb(o.get('weight_bytes'))} | {_us(o['latency_us'])} | {_us(o.get('p90_us'))} | "
                   f"{100 * (o.get('share') or 0):.1f} % |")
    untimed = [o for o in prof["ops"] if o["latency_us"] is None]
    for o in untimed:
        out.append(f"| {o['index']} | {o['op']} | – | – | – | – | not timed: {o.get('reason')} | | |")
    return out


def _bars(by_type: list, title: str, path: Path) -> str:
    from host.plots import pyplot, save_png
    plt = pyplot()
    rows = [r for r in by_type if r["latency_us"] > 0][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(3, len(rows)) + 1))
    ax.barh([f"{r['op']} ×{r['count']}" for r in rows], [r["latency_us"] for r in rows], color="#4477aa")
    for i, r in enumerate(rows):
        ax.text(r["latency_us"], i, f" {100 * (r.get('share') or 0):.0f} %", va="center", fontsize=8)
    ax.set_xlabel("sum of per-operator p50 (µs)")
    ax.set_title(title, fontsize=10)
    return save_png(fig, path)


def _bench_memory(bench_docs: list[tuple[Path, dict]], board: str, bundle: str, variant: str) -> dict | None:
    for _, doc in bench_docs:
        if (results.board_name(doc), results.bundle_name(doc)) == (board, bundle):
            for res in doc["results"]:
                if res.get("variant") == variant and res.get("status") == "ok":
                    return res.get("memory")
    return None


def memory_lines(plan: dict, measured: dict | None, bench_mem: dict | None) -> list[str]:
    """The plan (what the file implies) beside what the process really took."""
    out = ["| weights KB | fp16/sparse weights unpacked KB | activation arena KB | peak at op | "
           "model share of RSS MB (profile run) | model share of RSS MB (bench) |",
           "|---|---|---|---|---|---|",
           f"| {_kb(plan['weights_bytes'])} | {_kb(plan.get('unpacked_weights_bytes'))} | {_kb(plan['arena_bytes'])} | "
           f"{plan.get('peak_op')} {plan.get('peak_op_type') or ''} | {(measured or {}).get('model_mb', '–')} | "
           f"{(bench_mem or {}).get('model_mb', '–')} |"]
    static_mb = (plan["weights_bytes"] + (plan.get("unpacked_weights_bytes") or 0) + plan["arena_bytes"]) / 2 ** 20
    mb = (bench_mem or measured or {}).get("model_mb")
    if isinstance(mb, (int, float)):
        out += ["", f"The file implies {static_mb:.2f} MB (weights + arena); the rest of the measured "
                    f"{mb:.2f} MB is the runtime's own: the interpreter, XNNPACK's repacked weights and "
                    "workspace, kernels' scratch buffers."]
    return out


def section(root: Path, out: Path, bench_docs: list[tuple[Path, dict]]) -> tuple[list[str], list[str]]:
    """Markdown lines and image names for every board/bundle that has a profile result."""
    md, images = [], []
    for path, doc in load_profiles(root):
        board, bundle = results.board_name(doc), results.bundle_name(doc)
        emulated = bool(doc["device"].get("emulated"))
        md += [f"## Operator profile: {board} — bundle `{bundle}`", ""]
        if emulated:
            md += ["> **Emulated board**: per-operator latency under qemu says nothing about real hardware; "
                   "the memory plan and the graph facts (delegation, MACs, sizes) hold.", ""]
        md += [f"- runtime {doc['runtime'].get('name')} {doc['runtime'].get('version')}; file `{path}`", ""]
        for res in doc["results"]:
            variant = res.get("variant") or res["model"]["name"]
            if res["status"] != "ok":
                md += [f"- FAILED {variant}: {(res.get('error') or {}).get('message', '?')}", ""]
                continue
            prof, plan = res["profile"], res["memory_plan"]
            ratio = prof.get("ratio")
            md += [f"### {variant}" + (" (emulated)" if emulated else ""), "",
                   f"{prof.get('threads', 1)} thread(s), XNNPACK {'on' if prof.get('xnnpack', True) else 'off'}: "
                   f"whole model p50 {_us(prof['whole_p50_us'])} µs; operators sum to {_us(prof['sum_p50_us'])} µs "
                   f"(incl. one invoke's fixed cost {_us(prof['invoke_overhead_us'])} µs)"
                   + (f", ratio {ratio:.2f}" if ratio else "") + ".", ""]
            md += top_ops_table(prof) + [""]
            if prof.get("by_type"):
                name = f"profile_{results_slug(board)}_{results_slug(bundle)}_{results_slug(variant)}.png"
                images.append(_bars(prof["by_type"], f"{board} {bundle} {variant}: time by op type"
                                    + (" (emulated)" if emulated else ""), out / name))
                md += [f"![{name}]({name})", ""]
            md += memory_lines(plan, res.get("memory"), _bench_memory(bench_docs, board, bundle, variant)) + [""]
    return md, images


def results_slug(text: str) -> str:
    from device.contract.fileio import safe_name
    return safe_name(text)