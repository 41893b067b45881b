"""Human-readable output (tables) and progress lines; the JSON is the machine interface."""
from __future__ import annotations

import os
import sys
from typing import Optional


def progress_wanted() -> bool:
    """Progress for a person at a terminal (quiet under CI), or when a caller asks for it with
    EDGEKIT_PROGRESS=1: deploy streams stderr over SSH, where it is not a TTY."""
    if os.environ.get("EDGEKIT_PROGRESS") == "1":
        return True
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(message: str, fd: Optional[int] = None) -> None:
    """One plain progress line on stderr (or on fd: the parent's stderr, handed to a child)."""
    line = " ".join(message.split()) + "\n"
    if fd is not None:
        try:
            os.write(fd, line.encode(errors="replace"))
        except OSError:  # the reader went away: progress is not worth failing a measurement for
            pass
    elif progress_wanted():
        sys.stderr.write(line)
        sys.stderr.flush()


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: list, header: list) -> str:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)


def _print_info(d: dict) -> None:
    rt = d.get("runtime") or {}
    temps = ", ".join(f"{k} {v} C" for k, v in (d.get("temperature_c") or {}).items()) or "-"
    freq = d.get("cpufreq") or {}
    lines = [
        ("host", f"{d.get('hostname')} ({d.get('arch')}, {d.get('os') or '?'}, kernel {d.get('kernel')})"),
        ("board", d.get("board_model") or "-"),
        ("cpu", f"{d.get('cpu_model') or '?'} x {d.get('cpu_count')}"),
        ("ram", f"{_fmt(d.get('ram_total_mb'), 0)} MB total, {_fmt(d.get('ram_available_mb'), 0)} MB available"),
        ("python", f"{d.get('python')}, numpy {d.get('numpy') or '-'}"),
        ("runtime", f"{rt.get('name') or 'none'} {rt.get('version') or ''}".strip()),
        ("temperature", temps),
        ("throttled", _fmt((d.get("throttling") or {}).get("throttled"))),
        ("cpufreq", f"governor {freq.get('governor') or '-'}, {_fmt(freq.get('cur_mhz'), 0)}/"
                    f"{_fmt(freq.get('max_mhz'), 0)} MHz"),
        ("load", _fmt(d.get("load_avg"))),
        ("emulated", f"yes ({d.get('emulator')}: {'; '.join(d.get('emulation_reasons') or [])})"
         if d.get("emulated") else "no"),
    ]
    for key, value in lines:
        print(f"{key:<12} {value}")


def _answer_line(p: dict) -> str:
    """One line per prediction, whatever the task."""
    if "top_k" in p:
        return ", ".join(f"{t['label']} {t['score']:.3f}" for t in p["top_k"])
    if "detections" in p:
        dets = p["detections"]
        return f"{len(dets)} detections" + "".join(
            f"; {d['label']} {d['score']:.2f} [{', '.join(f'{v:.0f}' for v in d['box'])}]" for d in dets[:5])
    if "segmentation" in p:
        return ", ".join(f"{k} {v:.1%}" for k, v in list(p["segmentation"]["classes"].items())[:5])
    if "poses" in p:
        return f"{len(p['poses'])} people" + (f", best {p['poses'][0]['score']:.2f}" if p["poses"] else "")
    if "outputs" in p:
        return "; ".join(f"{o['name']} {o['shape']} argmax {o['argmax']}" for o in p["outputs"])
    return ""


def print_human(doc: dict) -> None:
    if doc["command"] == "info":
        _print_info(doc["device"])
    for r in doc["results"]:
        m = r["model"]
        if r["status"] != "ok":
            print(f"{m['name']}: FAILED ({r['error']['kind']}): {r['error']['message']}")
            continue
        ops = f"{_fmt(m.get('ops_delegated'))}/{_fmt(m.get('ops_total'))} ops delegated"
        mem = (r.get("memory") or {}).get("peak_rss_mb")
        variant = '' if r.get('variant') in (None, m['name'].rsplit('.', 1)[0]) else f"{r['variant']}, "
        print(f"{m['name']}  ({variant}{m.get('size_bytes')} bytes, {ops}, peak RSS {_fmt(mem)} MB)")
        if r["runs"]:
            rows = [[x["threads"], "on" if x["xnnpack"] else "off", x.get("ops_delegated"), x["count"],
                     x["init_us"], x["first_us"], x["mean_us"], x["p50_us"], x["p90_us"], x["p99_us"],
                     x.get("throughput_ips")] for x in r["runs"]]
            print(_table(rows, ["threads", "xnnpack", "delegated", "runs", "init us", "first us", "mean us",
                                "p50 us", "p90 us", "p99 us", "inf/s"]))
        acc = r.get("accuracy")
        if acc:
            extra = f", top-5 {acc['top5']:.4f}" if "top5" in acc else ""
            agree = f", agreement with host {acc['agreement_with_host']:.4f}" \
                if acc.get("agreement_with_host") is not None else ""
            print(f"top-1 {acc['top1']:.4f} on {acc['count']} images{extra}{agree}")
        if r.get("end_to_end"):
            from device.video.stats import end_to_end_line
            for e in r["end_to_end"]:
                print(end_to_end_line(e))
        if r.get("profile") or r.get("memory_plan"):
            from device.profiling.view import render
            print(render(r, _table))
        for p in r.get("predictions") or []:
            if "error" in p:
                print(f"{p['input']}: error: {p['error']}")
            else:
                post = f" + {p['postprocess_us']:.1f} us post-processing" if "postprocess_us" in p else ""
                print(f"{p['input']}: {_answer_line(p)}  ({p['latency_us']:.1f} us{post})")
    for w in doc["warnings"]:
        print(f"warning: {w}")
