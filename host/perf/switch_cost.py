"""`make perf` step: what a model switch costs the service (serve --follow), measured in one fresh
process running the agent's own Follower on two releases of the same bundle.

Figures per model: RSS serving the old model, peak RSS during the switch (the old model keeps
serving while the new one is checked in a child, loaded and self-checked: both are alive), the
switch's wall time, and the time from the link's change to the first request answered by the new
model. The peak is the kernel's high-water mark, reset just before the switch (/proc/self/clear_refs).

Weight cache: ai-edge-litert 2.3 offers XNNPACK's weight cache only to its CompiledModel API
(CpuOptions.xnnpack_weight_cache_path), not to the Interpreter every board runtime shares; so
`weight_cache` records what the CompiledModel path gives on the same model (load time and RSS with
a cold and a warm cache file) beside the Interpreter's, to decide on it with figures.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_SWITCH = r"""
import json, os, sys, time
import numpy as np
from device.runtimes import registry as runtime
from device.serving.swap import Follower, Served, release_loader
from device.serving.predictor import Predictor
from device.contract.inputs import load_manifest
home, variant, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
def status(key):
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)][0] / 1024
rt = runtime.resolve()
link = os.path.join(home, "current")
r1 = os.path.realpath(link)
manifest = load_manifest(os.path.join(r1, "manifest.json"))
pred = Predictor(os.path.join(r1, manifest["variants"][variant]["file"]), rt, workers, 1, manifest)
follower = Follower(Served(pred, os.path.basename(r1), variant), release_loader(rt, workers, 1, None), link)
spec = pred.in_specs[0]
x = np.zeros([max(1, d) for d in spec["shape"]], dtype=spec["dtype"])
for _ in range(20):
    follower.served.predictor.predict(x, 1)
rss_serving = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                                   # reset VmHWM to the current RSS
tmp = os.path.join(home, "current.new")
os.symlink(os.path.join(home, "r2"), tmp)
t0 = time.perf_counter()
os.replace(tmp, link)
follower.check_once()
switched = time.perf_counter() - t0
assert follower.served.release == "r2", follower.error
follower.served.predictor.predict(x, 1)
first = time.perf_counter() - t0
peak = status("VmHWM")
print(json.dumps({"rss_serving_mb": rss_serving, "peak_rss_during_switch_mb": peak, "switch_s": switched,
                  "first_request_on_new_s": first}))
"""

_CACHE = r"""
import json, os, sys, time
import numpy as np
model, cache, api = sys.argv[1], sys.argv[2], sys.argv[3]
def status(key):
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)][0] / 1024
if api == "interpreter":
    from ai_edge_litert.interpreter import Interpreter
    base = status("VmRSS"); t0 = time.perf_counter()
    it = Interpreter(model_path=model, num_threads=1); it.allocate_tensors()
    d = it.get_input_details()[0]; it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"])); it.invoke()
else:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.options import CpuOptions, Options
    base = status("VmRSS"); t0 = time.perf_counter()
    opts = Options(cpu_options=CpuOptions(num_threads=1, xnnpack_weight_cache_path=cache if api == "cache" else ""))
    cm = CompiledModel.from_file(model, options=opts)
    ins, outs = cm.create_input_buffers(0), cm.create_output_buffers(0)
    cm.run_by_index(0, ins, outs)
s = time.perf_counter() - t0
print(json.dumps({"load_and_first_s": s, "model_rss_mb": status("VmHWM") - base}))
"""


def _release_home(bundle: Path, root: Path) -> Path:
    for r in ("r1", "r2"):
        shutil.copytree(bundle, root / r, ignore=shutil.ignore_patterns("*.keras", "*.png", "history.json"))
    (root / "current").symlink_to(root / "r1")
    return root


def _run(code: str, args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _bundle_of(model: Path, work: Path) -> Path:
    """A minimal bundle (one int8 variant) around a bare .tflite, for the Follower's loader."""
    folder = work / f"bundle-{model.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "int8.tflite")
    (folder / "manifest.json").write_text(json.dumps({"variants": {"int8": {"file": "int8.tflite"}}}))
    return folder


def measure(bundle: Path, others: dict[str, Path], repeats: int, env: dict, spread, workers: int = 2) -> dict:
    """Switch figures for the bundle's INT8 model and each of `others` (name -> .tflite)."""
    out: dict = {"workers": workers, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgekit-switch-") as tmp:
        sources = {"default_int8": bundle, **{n: _bundle_of(p, Path(tmp)) for n, p in others.items()}}
        for name, src in sources.items():
            runs = []
            for i in range(repeats):
                home = _release_home(src, Path(tmp) / f"{name}-{i}")
                runs.append(_run(_SWITCH, [str(home), "int8", str(workers)], env))
            fig = {k: spread([r[k] for r in runs]) for k in runs[0]}
            fig["extra_peak_mb"] = spread([r["peak_rss_during_switch_mb"] - r["rss_serving_mb"] for r in runs])
            out["models"][name] = fig
        out["weight_cache"] = weight_cache(others, Path(tmp), repeats, env, spread)
    return out


def weight_cache(models: dict[str, Path], tmp: Path, repeats: int, env: dict, spread) -> dict:
    """Interpreter vs CompiledModel without and with the XNNPACK weight cache (cold file, then warm)."""
    out = {}
    for name, model in models.items():
        runs: dict = {"interpreter": [], "compiled_model": [], "cache_cold": [], "cache_warm": []}
        for i in range(repeats):
            cache = tmp / f"{name}-{i}.xnnpack_cache"
            runs["interpreter"].append(_run(_CACHE, [str(model), "", "interpreter"], env))
            runs["compiled_model"].append(_run(_CACHE, [str(model), "", "compiled"], env))
            runs["cache_cold"].append(_run(_CACHE, [str(model), str(cache), "cache"], env))
            runs["cache_warm"].append(_run(_CACHE, [str(model), str(cache), "cache"], env))
        out[name] = {k: {f: spread([r[f] for r in v]) for f in v[0]} for k, v in runs.items()}
    return out


def render(fig: dict | None, _line) -> list[str]:
    if not fig or "error" in fig or "skipped" in fig:
        return []
    lines = [f"model switch in the service (serve --follow, {fig['workers']} workers): RSS and time to the "
             "first request on the new model"]
    for name, v in fig["models"].items():
        lines.append(f"  {name}")
        lines.append(_line("RSS serving the old model", v["rss_serving_mb"], " MB", ".1f"))
        lines.append(_line("peak RSS during the switch", v["peak_rss_during_switch_mb"], " MB", ".1f"))
        lines.append(_line("extra peak during the switch", v["extra_peak_mb"], " MB", ".1f"))
        lines.append(_line("link change -> first request on the new model", v["first_request_on_new_s"], " s"))
    for name, v in (fig.get("weight_cache") or {}).items():
        lines.append(f"  XNNPACK weight cache (CompiledModel API only), {name}: load + first invoke / model RSS")
        for k in ("interpreter", "compiled_model", "cache_cold", "cache_warm"):
            lines.append(f"    {k:<16} {v[k]['load_and_first_s']['median']:.3f} s  "
                         f"{v[k]['model_rss_mb']['median']:.1f} MB")
    return lines
