"""The report's task section for a detector / pose / segmentation / raw bundle: the board's metric
beside the host's on the bundle's evaluation set (host/metrics/results.score_bench: pycocotools or
the confusion-matrix IoU on both prediction sets; a raw model's output errors and top-1)."""
from __future__ import annotations

from pathlib import Path


def task_lines(result_path: Path, bundle_dir: Path, manifest: dict, doc: dict) -> list[str]:
    """Markdown lines; [] for a classifier's bundle or a result without the task's figures."""
    kind = (manifest.get("eval") or {}).get("kind")
    field = {"images": "predictions", "tensors": "tensors"}.get(kind)
    if field is None or not any(r.get(field) for r in doc["results"]):
        return []
    from host.data.builtin import DatasetError
    from host.metrics.results import HEADLINES, score_bench

    try:
        scores = score_bench(str(result_path), bundle_dir)
    except (DatasetError, OSError, ValueError) as exc:
        return [f"- {manifest.get('task')} metric not computed: {str(exc).splitlines()[0]}", ""]
    if kind == "tensors":
        return tensor_lines(scores)
    h = HEADLINES[scores["task"]]
    agree = "".join(f" {label} |" for _, label in h.agreement)
    out = [f"**{scores['task']}** on `{scores['eval']}` ({h.standard})", "",
           f"| variant | board {h.label} | host {h.label} | board {h.label2} | host {h.label2} |{agree}",
           "|---|---|---|---|---|" + "---|" * len(h.agreement)]

    def f(s, k):
        return "–" if not s or s.get(k) is None else f"{s[k]:.4f}"
    notes: list[str] = []
    for variant, s in sorted(scores["variants"].items()):
        a = s.get("agreement") or {}
        out.append(f"| {variant} | {f(s['board'], h.key)} | {f(s['host'], h.key)} | {f(s['board'], h.key2)} | "
                   f"{f(s['host'], h.key2)} |" + "".join(f" {f(a, k)} |" for k, _ in h.agreement))
        for side in ("board", "host"):          # per-class IoU of a segmenter, by label name
            per_class = (s.get(side) or {}).get("per_class")
            if per_class:
                notes.append(f"- {variant} {side} IoU per class: " + ", ".join(f"{k} {f(per_class, k)}" for k in per_class))
    return out + [""] + (notes + [""] if notes else [])


def tensor_lines(scores: dict) -> list[str]:
    """A raw (any-tensor) bundle: per variant and output the board's largest absolute error and
    mean cosine beside the host's (recorded at bundle time), and top-1 when the set has labels."""
    out = [f"**raw** on `{scores['eval']}` (the board's own comparison with the set's expected outputs)", "",
           "| variant | figure | board | host |", "|---|---|---|---|"]
    for variant, s in sorted(scores["variants"].items()):
        board, host = s["board"] or {}, s["host"] or {}
        for key in dict.fromkeys(list(board) + list(host)):
            fmt = ".4g" if "error" in key else ".4f"
            out.append(f"| {variant} | {key} | {'–' if board.get(key) is None else format(board[key], fmt)} | "
                       f"{'–' if host.get(key) is None else format(host[key], fmt)} |")
    return out + [""]
