"""The report's task section for a detector / pose bundle: the board's metric beside the host's on
the bundle's evaluation set (host/metrics/results.score_bench: pycocotools on both prediction sets)."""
from __future__ import annotations

from pathlib import Path


def task_lines(result_path: Path, bundle_dir: Path, manifest: dict, doc: dict) -> list[str]:
    """Markdown lines; [] for a classifier's bundle or a result without predictions."""
    if (manifest.get("eval") or {}).get("kind") != "images" or not any(r.get("predictions") for r in doc["results"]):
        return []
    from host.data.builtin import DatasetError
    from host.metrics.results import score_bench

    try:
        scores = score_bench(str(result_path), bundle_dir)
    except (DatasetError, OSError, ValueError) as exc:
        return [f"- {manifest.get('task')} metric not computed: {str(exc).splitlines()[0]}", ""]
    detect = scores["task"] == "detect"
    key, label = ("map", "mAP@[.5:.95]") if detect else ("ap", "OKS AP")
    key50, label50 = ("map50", "mAP@.5") if detect else ("ap50", "OKS AP@.5")
    out = [f"**{scores['task']}** on `{scores['eval']}` (pycocotools)", "",
           f"| variant | board {label} | host {label} | board {label50} | host {label50} | host boxes matched "
           "on the board | mean IoU |", "|---|---|---|---|---|---|---|"]

    def f(s, k):
        return "–" if not s or s.get(k) is None else f"{s[k]:.4f}"
    for variant, s in sorted(scores["variants"].items()):
        a = s.get("agreement") or {}
        out.append(f"| {variant} | {f(s['board'], key)} | {f(s['host'], key)} | {f(s['board'], key50)} | "
                   f"{f(s['host'], key50)} | {f(a, 'matched')} | {f(a, 'mean_iou')} |")
    return out + [""]
