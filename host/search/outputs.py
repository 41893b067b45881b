"""What a finished search leaves: the table and summary lines on the terminal, the picture, and the
winner as a normal bundle artifacts/<name>/."""
from __future__ import annotations

import shutil
from pathlib import Path
import numpy as np

from host.config import ARTIFACTS
from host.search import space as sp
from host.search.candidate import Candidate
from host.search.stages import Stages


def summary_table(cands: list[Candidate]) -> str:
    """One line per candidate: its model, static facts, latest p50, accuracies and why it stopped."""
    head = (f"{'id':<4} {'model':<28} {'params':>8} {'MMACs':>6} {'KB':>6} {'p50 us':>8} {'val %':>6} "
            f"{'test %':>6} {'dev %':>6}  status")
    lines = [head, "-" * len(head)]
    pct = lambda x: "–" if x is None else f"{100 * x:.2f}"  # noqa: E731
    for c in cands:
        s, i8, f = c.static or {}, c.int8 or {}, c.final or {}
        p50 = f.get("p50_us") or (c.short or {}).get("p50_us")
        val = i8.get("val_top1") or max((t["val_accuracy"] for t in (c.train or {}).values()), default=None)
        lines.append(f"{c.id:<4} {sp.describe(c.config):<28} {s.get('params', 0):>8,} "
                     f"{s.get('macs', 0) / 1e6:>6.2f} {s.get('int8_size_bytes', 0) / 1024:>6.1f} "
                     f"{'–' if p50 is None else f'{p50:.1f}':>8} {pct(val):>6} {pct(i8.get('host_top1')):>6} "
                     f"{pct(f.get('device_top1')):>6}  {c.status}{': ' + c.why if c.why else ''}")
    return "\n".join(lines)


def print_summary(doc: dict, cands: list[Candidate], folder: Path) -> None:
    """The picture (folder/pareto.png), the table, this run's counts and where the files are."""
    from host.report.search import plot_pareto

    plot_pareto(doc, folder / "pareto.png")
    print(summary_table(cands))
    last = doc["runs"][-1]
    emulated = any(c.figures().get("emulated") for c in cands)
    print(f"\n{len(cands)} candidates, {last['bench_calls']} measured on the board in this run, "
          f"{last['trained']} trainings, {last['wall_s']:.0f} s; budgets "
          + ", ".join(f"{k}={v:g}" for k, v in doc["budgets"].items())
          + f" on {doc['board']}{' (EMULATED: not board latency)' if emulated else ''}")
    print(f"leaderboard: {folder / 'leaderboard.json'}, picture: {folder / 'pareto.png'}")


def print_winner(winner: Candidate, out: Path, name: str) -> None:
    f = winner.final
    board_top1 = "–" if f.get("device_top1") is None else f"{100 * f['device_top1']:.2f}"
    print(f"winner {winner.id} ({sp.describe(winner.config)}): p50 {f['p50_us']:.1f} us, "
          f"INT8 top-1 {100 * winner.int8['host_top1']:.2f} % host / {board_top1} % board "
          f"-> {out}/ (ready for `make deploy bench report NAME={name}`)")


def write_winner(search: Stages, doc: dict, winner: Candidate) -> Path:
    """The winner as a normal bundle artifacts/<name>/ (all four variants; its INT8 file is the one
    measured), the manifest saying it came from a search and under which budgets."""
    import keras

    from host.convert.quantize import convert_all, graph_summary
    from host.model.architecture import count_macs
    from host.model.train import normalise
    from host.pipeline.trained import write_trained_bundle as write_bundle
    from host.pipeline.evaluate import evaluate_variants

    folder = search.dir / "cands" / winner.extra.get("same_as", winner.id)    # a repeat draw: the trained one's files
    ds = search.data_at(winner.config["input"])
    model = keras.models.load_model(folder / f"e{winner.int8['epochs']}" / "model.keras")
    variants = convert_all(model, search.calibration(ds, search.req.calibration), ("fp32", "dynamic", "fp16"))
    variants["int8"] = (folder / "bundle" / "int8.tflite").read_bytes()
    evals = evaluate_variants(variants, ds.x_test, ds.y_test)
    specs = {v: graph_summary(b) for v, b in variants.items()}
    keras_top1 = float(np.mean(np.argmax(model.predict(normalise(ds.x_test), verbose=0), 1) == ds.y_test))
    info = {"params": winner.static["params"], "macs": count_macs(model), "alpha": winner.config["alpha"],
            "keras_top1": keras_top1, "calibration_samples": search.req.calibration,
            "search": {"leaderboard": str(search.dir / "leaderboard.json"), "candidate": winner.id,
                       "config": winner.config, "budgets": doc["budgets"], "board": doc["board"],
                       "runtime": doc["runtime"], "threads": search.req.threads,
                       "final": {k: winner.final.get(k) for k in ("p50_us", "p99_us", "peak_rss_mb", "device_top1")}}}
    out = ARTIFACTS / search.req.name
    tmp = ARTIFACTS / f".{search.req.name}.search-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_bundle(tmp, search.req.name, search.req.dataset, ds, variants, specs, evals, info)
    shutil.copyfile(folder / f"e{winner.int8['epochs']}" / "model.keras", tmp / "model.keras")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
