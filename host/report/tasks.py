"""The report's task section for a detector / pose / segmentation bundle: the board's metric beside
the host's on the bundle's evaluation set (host/metrics/results.score_bench: pycocotools or the
confusion-matrix IoU on both prediction sets)."""
from __future__ import annotations

from pathlib import Path


def task_lines(result_path: Path, bundle_dir: Path, manifest: dict, doc: dict) -> list[str]:
    """Markdown lines; [] for a classifier's bundle or a result without predictions."""
    if (manifest.get("eval") or {}).get("kind") != "images" or not any(r.get("predictions") for r in doc["results"]):
        return []
    from host.data.builtin import DatasetError
    from host.metrics.results import HEADLINES, score_bench

    try:
        scores = score_bench(str(result_path), bundle_dir)
    except (DatasetError, OSError, ValueError) as exc:
        return [f"- {manifest.get('task')} metric not computed: {str(exc).splitlines()[0]}", ""]
    h = HEADLINES[scores["task"]]
    agree = "".join(f" {label} |" for _, label in h.agreement)
    out = [f"**{scores['task']}** on `{scores['eval']}` ({h.standard})", "",
           f"| variant | board {h.label} | host {h.label} | board {h.label2} | host {h.label2} |{agree}",
           "|---|---|---|---|---|" + "---|" * len(h.agreement)]

    def f(s, k):
        return "–" if not s or s.get(k) is None else f"{s[k]:.4f}"
    for variant, s in sorted(scores["variants"].items()):
        a = s.get("agreement") or {}
        out.append(f"| {variant} | {f(s['board'], h.key)} | {f(s['host'], h.key)} | {f(s['board'], h.key2)} | "
                   f"{f(s['host'], h.key2)} |" + "".join(f" {f(a, k)} |" for k, _ in h.agreement))
    return out + [""]
