"""What a search leaves behind: the winner as a normal bundle, and the table it prints."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from host.config import ARTIFACTS
from host.search import space as sp
from host.search.candidates import Candidates


def write_winner(search: Candidates, lb: dict, winner: dict) -> Path:
    """The winner as a normal bundle artifacts/<name>/ (all four variants; its INT8 file is the one
    measured), the manifest saying it came from a search and under which budgets."""
    import keras

    from host.convert.quantize import convert_all, graph_summary
    from host.model.architecture import count_macs
    from host.model.train import normalise
    from host.pipeline.evaluate import evaluate_variants
    from host.pipeline.trained import write_trained_bundle as write_bundle

    folder = search.dir / "cands" / winner["id"]
    ds = search.data_at(winner["config"]["input"])
    model = keras.models.load_model(folder / f"e{winner['int8']['epochs']}" / "model.keras")
    variants = convert_all(model, search.calibration(ds, search.req.calibration), ("fp32", "dynamic", "fp16"))
    variants["int8"] = (folder / "bundle" / "int8.tflite").read_bytes()
    evals = evaluate_variants(variants, ds.x_test, ds.y_test)
    specs = {v: graph_summary(b) for v, b in variants.items()}
    keras_top1 = float(np.mean(np.argmax(model.predict(normalise(ds.x_test), verbose=0), 1) == ds.y_test))
    info = {"params": winner["static"]["params"], "macs": count_macs(model), "alpha": winner["config"]["alpha"],
            "keras_top1": keras_top1, "calibration_samples": search.req.calibration,
            "search": {"leaderboard": str(search.dir / "leaderboard.json"), "candidate": winner["id"],
                       "config": winner["config"], "budgets": lb["budgets"], "board": lb["board"],
                       "runtime": lb["runtime"], "threads": search.req.threads,
                       "final": {k: winner["final"].get(k) for k in ("p50_us", "p99_us", "peak_rss_mb", "device_top1")}}}
    out = ARTIFACTS / search.req.name
    tmp = ARTIFACTS / f".{search.req.name}.search-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_bundle(tmp, search.req.name, search.req.dataset, ds, variants, specs, evals, info)
    shutil.copyfile(folder / f"e{winner['int8']['epochs']}" / "model.keras", tmp / "model.keras")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def summary_table(lb: dict) -> str:
    head = (f"{'id':<4} {'model':<28} {'params':>8} {'MMACs':>6} {'KB':>6} {'p50 us':>8} {'val %':>6} "
            f"{'test %':>6} {'dev %':>6}  status")
    lines = [head, "-" * len(head)]
    pct = lambda x: "–" if x is None else f"{100 * x:.2f}"  # noqa: E731
    for c in lb["candidates"]:
        s, i8, f = c.get("static", {}), c.get("int8") or {}, c.get("final") or {}
        p50 = f.get("p50_us") or (c.get("short") or {}).get("p50_us")
        val = i8.get("val_top1") or max((t["val_accuracy"] for t in c.get("train", {}).values()), default=None)
        lines.append(f"{c['id']:<4} {sp.describe(c['config']):<28} {s.get('params', 0):>8,} "
                     f"{s.get('macs', 0) / 1e6:>6.2f} {s.get('int8_size_bytes', 0) / 1024:>6.1f} "
                     f"{'–' if p50 is None else f'{p50:.1f}':>8} {pct(val):>6} {pct(i8.get('host_top1')):>6} "
                     f"{pct(f.get('device_top1')):>6}  {c['status']}{': ' + c['why'] if c['why'] else ''}")
    return "\n".join(lines)
