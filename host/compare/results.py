"""`make compare A=... B=...`: is B worse than A beyond the noise? Non-zero exit when it is.

Latency: the p50 change must exceed the threshold AND the two sets of raw per-run samples must
differ significantly (two-sided Mann–Whitney U, p < 0.01), so run-to-run jitter alone never
fails a gate. Accuracy: any drop beyond `acc_threshold_pp` - top-1 for a classifier, the board's
mAP (OKS AP, mIoU) for a detector (pose model, segmenter), scored here on the bundle's set. Memory: peak RSS beyond
the threshold.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from device.contract import results


ALPHA = 0.01  # significance level for the latency test
GATES = {m.key: m.gate for m in results.METRICS}
TASK_GATES = {"map": "points", "ap": "points", "miou": "points"}   # a task's metric, scored on the host
GATES.update(TASK_GATES)


@dataclass
class Delta:
    key: str
    metric: str
    a: float
    b: float
    change_pct: float
    significant: bool
    regression: bool


def _load(path: str) -> dict:
    if not Path(path).is_file():
        raise FileNotFoundError(f"result file not found: {path}")
    return results.load(path)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value; 1.0 when there are too few samples to tell."""
    if len(a) < 5 or len(b) < 5:
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def compare(a: dict, b: dict, threshold_pct: float = 5.0, acc_threshold_pp: float = 0.5) -> list[Delta]:
    """A Delta per shared setting and gated metric (device.contract.results.METRICS); per-model metrics
    (memory, accuracy) once per variant, at its fewest threads."""
    ia, ib = results.run_index(a), results.run_index(b)
    deltas = []
    for key in sorted(set(ia) & set(ib)):
        (ra, runa), (rb, runb) = ia[key], ib[key]
        other = results.runtime_of(rb, b) != (b.get("runtime") or {}).get("name")   # ORT rows beside LiteRT
        label = (f"{key[0]}{f' ({results.runtime_of(rb, b)})' if other else ''} t={key[1]} "
                 f"xnnpack={'on' if key[2] else 'off'}")
        first_setting = key[1] == min(k[1] for k in ia if k[0] == key[0])
        p = None
        for m in results.METRICS:
            if not m.gate or (not m.per_run and not first_setting):
                continue
            va, vb = m.get(ra, runa), m.get(rb, runb)
            if va is None or vb is None or (m.gate != "points" and not va):
                continue
            if m.gate in ("latency", "shown"):
                if p is None:
                    p = mann_whitney_p(runa.get("samples_us") or [], runb.get("samples_us") or [])
                change = 100 * (vb - va) / va
                gated = m.gate == "latency" and p < ALPHA and change > threshold_pct
                deltas.append(Delta(label, m.key, va, vb, change, p < ALPHA, gated))
            elif m.gate == "percent":
                change = 100 * (vb - va) / va
                deltas.append(Delta(label, m.key, va, vb, change, abs(change) > 2, change > threshold_pct))
            elif m.gate == "points":
                pp = 100 * (vb - va)
                deltas.append(Delta(label, m.key, va, vb, pp, abs(pp) > 0, pp < -acc_threshold_pp))
    return deltas


def task_deltas(path_a: str, a: dict, path_b: str, b: dict, acc_threshold_pp: float = 0.5) -> list[Delta]:
    """The task's metric as a gate: each result's board predictions scored on its bundle's set
    (host/metrics/results.score_bench), per shared variant; [] when the results carry none."""
    from host.config import ARTIFACTS
    from host.data.builtin import DatasetError
    from host.metrics.results import HEADLINES, score_bench

    if not all(any(r.get("predictions") for r in d["results"]) for d in (a, b)):
        return []
    scored = []
    for path, doc in ((path_a, a), (path_b, b)):
        bundle = ARTIFACTS / results.bundle_name(doc)
        try:
            scored.append(score_bench(path, bundle))
        except DatasetError as exc:
            print(f"note: task metric not compared: {str(exc).splitlines()[0]}")
            return []
    (sa, sb), out = scored, []
    for variant in sorted(set(sa["variants"]) & set(sb["variants"])):
        va, vb = sa["variants"][variant]["board"], sb["variants"][variant]["board"]
        key = HEADLINES[sa["task"]].key
        if va.get(key) is None or vb.get(key) is None:
            continue
        pp = 100 * (vb[key] - va[key])
        out.append(Delta(f"{variant} ({sa['task']})", key, va[key], vb[key], pp, abs(pp) > 0, pp < -acc_threshold_pp))
    return out


def render(deltas: list[Delta]) -> str:
    lines = [f"{'setting':<30} {'metric':<12} {'A':>10} {'B':>10} {'change':>9}  verdict"]
    for d in deltas:
        unit = "pp" if GATES.get(d.metric) == "points" else "%"
        verdict = "REGRESSION" if d.regression else ("changed" if d.significant else "within noise")
        lines.append(f"{d.key:<30} {d.metric:<12} {d.a:>10.4g} {d.b:>10.4g} {d.change_pct:>+8.2f}{unit}  {verdict}")
    return "\n".join(lines)


def _board(doc: dict) -> str:
    d = doc["device"]
    return f"{d.get('hostname')} ({d.get('arch')}{', emulated' if d.get('emulated') else ''})"


def compare_main(path_a: str, path_b: str, threshold_pct: float = 5.0, cross_board: bool = False) -> int:
    if not path_a or not path_b:
        print("host: error: give two result files: make compare A=results/x.json B=results/y.json", file=sys.stderr)
        return 2
    a, b = _load(path_a), _load(path_b)
    if _board(a) != _board(b) and not cross_board:
        # A gate compares a model change on one board; across boards every delta is the board's.
        print(f"host: error: A ran on {_board(a)}, B on {_board(b)}: a regression gate needs one board "
              "(pass --cross-board to compare anyway)", file=sys.stderr)
        return 2
    deltas = compare(a, b, threshold_pct) + task_deltas(path_a, a, path_b, b)
    if not deltas:
        print("host: error: the two results share no model variant x threads setting to compare", file=sys.stderr)
        return 2
    if _board(a) != _board(b):
        print(f"note: different boards: A {_board(a)}, B {_board(b)}")
    print(render(deltas))
    from host.compare import profile as compare_profile  # two `make profile` results: the operators that moved
    moved = compare_profile.render(a, b, threshold_pct)
    if moved:
        print(moved)
    bad = [d for d in deltas if d.regression]
    if bad:
        print(f"\n{len(bad)} regression(s) beyond the threshold ({threshold_pct:g} % latency/memory, 0.5 pp accuracy)")
        return 1
    print("\nno regression beyond the noise and the threshold")
    return 0
