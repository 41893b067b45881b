"""Report lines about a model the user brought (not the built-in one): where it came from, its
preprocessing, and the on-device results in the model's own label names (confusions read from the
agent's matrix)."""
from __future__ import annotations


def _name(labels: list, i: int) -> str:
    return str(labels[i]) if labels and i < len(labels) else str(i)


def model_lines(manifest: dict, doc: dict) -> list[str]:
    """Markdown bullet lines; empty for a bundle that records no origin (the built-in path)."""
    origin = manifest.get("origin")
    if not origin:
        return []
    out = [f"- model: {origin.get('format')} `{origin.get('path')}`"
           + (f" (sha256 {origin['sha256'][:12]})" if origin.get("sha256") else "")]
    inp = manifest.get("input")
    if inp:
        out.append(f"- preprocessing: {inp.get('preprocess', 'custom')} (f = pixel × {inp['pixel_scale']} + "
                   f"{inp['pixel_offset']}), {inp.get('color_order', 'RGB')}, resize {inp.get('resize', 'stretch')}, "
                   f"{inp['height']}×{inp['width']}×{inp['channels']}")
    if manifest.get("accuracy_checked") is False:
        out.append("- accuracy: **unchecked** (no eval set, or random calibration data)")
    labels = manifest.get("class_names") or []
    if labels:
        shown = ", ".join(f"`{_name(labels, i)}`" for i in range(min(3, len(labels))))
        out.append(f"- labels: {len(labels)} ({shown}{', …' if len(labels) > 3 else ''})")
    for res in doc.get("results", []):
        acc = res.get("accuracy") or {}
        conf = acc.get("confusion")
        if not conf:
            continue
        right = [(conf[t][t], t) for t in range(len(conf)) if conf[t][t]]
        wrong = sorted(((conf[t][p], t, p) for t in range(len(conf)) for p in range(len(conf[t]))
                        if t != p and conf[t][p]), reverse=True)[:3]
        text = ", ".join(f"`{_name(labels, t)}` {n}" for n, t in sorted(right, reverse=True)[:3]) or "none"
        miss = ", ".join(f"`{_name(labels, t)}` → `{_name(labels, p)}` {n}" for n, t, p in wrong) or "none"
        out.append(f"- {res.get('variant') or res['model']['name']} on the board: correct {text}; most frequent mistakes {miss}")
    return out
