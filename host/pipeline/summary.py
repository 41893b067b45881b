"""The summary printed after `make quantize`, `make bundle` and `make evaluate`: one table for every bundle.

The table's columns follow what the manifest records (the static memory plan's weights/arena, the
host latency); around it, where the model came from and what to check next.
"""
from __future__ import annotations

from host.data.user import RANDOM

DASH = "–"   # a figure that does not exist (no fp32 to compare with, no eval set)


def _fmt(x: float | None, spec: str) -> str:
    return DASH if x is None else format(x, spec)


def _kb(b: int | None) -> str:
    return f"{b / 1024:.1f}" if b is not None else "-"


def summary_table(manifest: dict) -> str:
    """variant | size KB | [weights KB | arena KB] | x FP32 | top-1 % | Δ pp vs FP32 | agreement % | [host µs]."""
    variants = manifest["variants"]
    base = variants.get("fp32")
    planned = any("memory_plan" in e for e in variants.values())
    timed = any("host_us" in e for e in variants.values())
    cols = ([("variant", "<8"), ("size KB", ">9")] + [("weights KB", ">10"), ("arena KB", ">9")] * planned
            + [("x fp32", ">7"), ("top-1 %", ">8"), ("Δ pp", ">7"), ("agree %", ">8")] + [("host µs", ">9")] * timed)
    head = " ".join(format(title, align) for title, align in cols)
    lines = [head, "-" * len(head)]
    for name, e in variants.items():
        top1, base_top1 = e["host_top1"], base["host_top1"] if base else None
        plan = e.get("memory_plan") or {}
        cells = ([name, f"{e['size_bytes'] / 1024:.1f}"]
                 + [_kb(plan.get("weights_bytes")), _kb(plan.get("arena_bytes"))] * planned
                 + [_fmt(e["size_bytes"] / base["size_bytes"] if base else None, ".3f"),
                    _fmt(None if top1 is None else 100 * top1, ".2f"),
                    _fmt(None if top1 is None or base_top1 is None else 100 * (top1 - base_top1), "+.2f"),
                    _fmt(None if e["agreement_with_fp32"] is None else 100 * e["agreement_with_fp32"], ".2f")]
                 + [_fmt(e.get("host_us"), ".1f")] * timed)
        lines.append(" ".join(format(cell, align) for cell, (_, align) in zip(cells, cols)))
    return "\n".join(lines)


def print_summary(manifest: dict) -> None:
    """Where the model came from, the table, then what to look at: accuracy unchecked, the INT8
    debugger's worst layers, or (a model trained here) the INT8 targets."""
    _print_origin(manifest)
    print(summary_table(manifest))
    if manifest.get("accuracy_checked") is False:
        random = (manifest.get("calibration") or {}).get("source") == RANDOM
        print("accuracy: UNCHECKED (" + ("CALIB=random" if random else "no EVAL=") + ")")
    if manifest.get("int8_debug"):
        _print_int8_debug(manifest)
    if "origin" not in manifest:
        _print_targets(manifest)


def _print_origin(manifest: dict) -> None:
    if "origin" not in manifest:            # trained here on a built-in dataset
        m = manifest["model"]
        print(f"\n{manifest['name']}: {m['params']:,} params, {m['macs'] / 1e6:.2f} M MACs, "
              f"Keras test top-1 {100 * m['keras_top1']:.2f} % on {manifest['eval']['count']} test images")
        return
    o = manifest["origin"]
    count = (manifest.get("eval") or {}).get("count")
    task = manifest.get("task", "classify")
    if manifest.get("eval_set"):
        checked = f", eval set {manifest['eval_set']} (its {task} metric below)"
    else:
        checked = f", {count} eval images" if count else ", no eval set (accuracy not checked)"
    print(f"\n{manifest['name']}: {o['format']} {task} model {o['path']}{checked}")
    if manifest.get("input"):
        i = manifest["input"]
        colour = i["color_order"] if i["channels"] == 3 else "gray"
        print(f"input {i['height']}x{i['width']}x{i['channels']} {colour}, resize {i['resize']}, "
              f"preprocess {i['preprocess']} (f = pixel*{i['pixel_scale']} + {i['pixel_offset']})")


def _print_int8_debug(manifest: dict) -> None:
    dbg, v = manifest["int8_debug"], manifest["variants"]
    print(f"\nint8 loses accuracy ({dbg['reason']}); worst layers (RMSE / quantisation step):")
    for r in dbg["worst_layers"]:
        print(f"  {r['rmse_over_scale']:>8.3f}  {r['op']:<20} {r['layer']}")
    if "mixed" in v and "int8" in v:
        m, i8 = v["mixed"], v["int8"]
        gain = (f"{100 * (m['host_top1'] - i8['host_top1']):+.2f} pp top-1 vs int8"
                if m["host_top1"] is not None and i8["host_top1"] is not None
                else f"its {manifest.get('task', 'task')} figure on its line above")
        print(f"mixed keeps {', '.join(dbg.get('kept_float', []))} in float: {gain}, "
              f"size x{m['size_bytes'] / i8['size_bytes']:.2f}, host latency x{m['host_us'] / max(i8['host_us'], 1e-9):.2f}")
    else:
        print("  INT8_FALLBACK=N re-converts with the N worst layers kept in float (variant 'mixed')")
    if manifest.get("task") == "detect":
        print("  likely cause for a raw YOLO head: boxes (pixels) and scores (0-1) leave the graph in one INT8 "
              "tensor with one scale, and the box decoding runs in INT8; mixed (built for a raw head), fp16 "
              "and dynamic keep float there (their lines above)")


def _print_targets(manifest: dict) -> None:
    """The built-in model's INT8 targets (size, accuracy vs FP32, and mnist5k's absolute bar)."""
    v = manifest["variants"]
    if "int8" not in v or "fp32" not in v:
        return
    i8, f32 = v["int8"], v["fp32"]
    ratio, delta = i8["size_bytes"] / f32["size_bytes"], 100 * (i8["host_top1"] - f32["host_top1"])
    checks = [("INT8 size <= 0.30x FP32", ratio <= 0.30, f"{ratio:.3f}x"),
              ("INT8 - FP32 accuracy >= -0.3 pp", delta >= -0.3, f"{delta:+.2f} pp")]
    if manifest["dataset"]["spec"] == "mnist5k":
        checks.insert(0, ("INT8 test top-1 >= 98.0 % (mnist5k)", i8["host_top1"] >= 0.98,
                          f"{100 * i8['host_top1']:.2f} %"))
    print("\ntargets:")
    for text, ok, value in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}: {value}")
    print(f"  int8 graph: {i8['ops']} ops, float ops: {', '.join(i8['float_ops']) or 'none'}, "
          f"input {i8['input']['dtype']} (scale {i8['input']['scale']:.6g}, zero point "
          f"{i8['input']['zero_point']}), output {i8['output']['dtype']}")
