"""Profile budgets: a model change can be gated in CI, like ArmNN's --threshold-time."""
from __future__ import annotations

from device.contract import results


def check(doc: dict, budgets: dict) -> list[str]:
    """Every broken budget as one line; empty when all hold (or no budgets are set)."""
    broken = []
    for res, run in results.runs(doc):
        where = f"{res['variant']} threads={run['threads']}{'' if run['xnnpack'] else ' no-xnnpack'}"
        for key, field in (("max_p50_us", "p50_us"), ("max_p99_us", "p99_us")):
            if key in budgets and run[field] > budgets[key]:
                broken.append(f"{where}: {field} {run[field]:.1f} > budget {budgets[key]:g}")
    for res in doc.get("results", []):
        if res.get("status") != "ok":
            continue
        name, peak, top1 = res["variant"], results.peak_rss_mb(res), results.top1(res)
        if "max_peak_rss_mb" in budgets and peak is not None and peak > budgets["max_peak_rss_mb"]:
            broken.append(f"{name}: peak RSS {peak:.1f} MB > budget {budgets['max_peak_rss_mb']:g} MB")
        if "min_top1" in budgets:
            if top1 is None:
                broken.append(f"{name}: no accuracy measured but min_top1 is set")
            elif top1 < budgets["min_top1"]:
                broken.append(f"{name}: top-1 {top1:.4f} < budget {budgets['min_top1']:g}")
    return broken
