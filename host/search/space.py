"""The model search's space (host/search/space.yaml), its candidates, and their free static facts.

A candidate is a plain dict of builder arguments (alpha, input size, blocks, kernel, stem
filters, stem stride): everything host/model.build_model needs, nothing else, so a leaderboard entry can be
rebuilt exactly. host/search/study.py turns the space into Optuna's distributions and a trial's
values back into a candidate; the default model is always one of them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from host.config import DEFAULTS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPACE = Path(__file__).with_name("space.yaml")
MIN_SIDE = 8      # px; smaller inputs leave nothing for the blocks to see


class SearchError(Exception):
    """Bad search input (space file, budgets, names): one line, exit 2."""


@dataclass
class Space:
    seed: int
    alpha: list
    resolution: list
    blocks: list
    kernel: list
    last_width: list
    stem_filters: list
    stem_stride: list
    digest: str         # sha256 of the file's content: a resumed search must use the same space


_KEYS = {"alpha": (int, float), "resolution": (int, float), "blocks": list, "kernel": int,
         "last_width": (int, type(None)), "stem_filters": int, "stem_stride": int}
OPTIONAL = {"stem_stride": [DEFAULTS.stem_stride]}     # keys a space file may leave out (older files)


BLOCK_KINDS = ("sep", "pw", "conv")      # host/model/architecture.py's block kinds


def _block_ok(b) -> bool:
    if not isinstance(b, list) or len(b) not in (2, 3):
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in b[:2]) or b[1] not in (1, 2):
        return False
    kind = b[2] if len(b) == 3 else "sep"
    return kind in BLOCK_KINDS and not (kind == "pw" and b[1] != 1)


def load_space(path: Path) -> Space:
    """Read and check the space file; any mistake is one SearchError line naming the key."""
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"search space {path} not found (the default is {DEFAULT_SPACE.relative_to(REPO)})")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SearchError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SearchError(f"{path}: expected a mapping of keys")
    unknown = sorted(set(data) - set(_KEYS) - {"seed"})
    if unknown:
        raise SearchError(f"{path}: unknown key(s) {', '.join(unknown)} (allowed: seed, {', '.join(_KEYS)})")
    data = {**OPTIONAL, **data}
    for key, types in _KEYS.items():
        values = data.get(key)
        if not isinstance(values, list) or not values:
            raise SearchError(f"{path}: {key} must be a non-empty list of choices")
        if any(isinstance(v, bool) or not isinstance(v, types) for v in values):
            raise SearchError(f"{path}: {key} has a choice of the wrong type")
    if any(v <= 0 for v in data["alpha"]) or any(not 0 < v <= 1 for v in data["resolution"]):
        raise SearchError(f"{path}: alpha must be > 0 and resolution in (0, 1]")
    if any(k < 1 or k % 2 == 0 for k in data["kernel"]):
        raise SearchError(f"{path}: kernel sizes must be odd and positive")
    if any(v not in (1, 2) for v in data["stem_stride"]):
        raise SearchError(f"{path}: stem_stride choices must be 1 or 2")
    for pattern in data["blocks"]:
        if not pattern or not all(_block_ok(b) for b in pattern):
            raise SearchError(f"{path}: each blocks pattern is a list of [filters, stride] or [filters, stride, kind] "
                              f"(stride 1 or 2; kind {', '.join(BLOCK_KINDS)}; a pw block has stride 1)")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SearchError(f"{path}: seed must be an integer")
    return Space(seed, data["alpha"], data["resolution"], data["blocks"], data["kernel"], data["last_width"],
                 data["stem_filters"], data["stem_stride"], hashlib.sha256(text.encode()).hexdigest()[:16])


def input_at(native: tuple[int, int, int], fraction: float) -> list[int]:
    """[h, w, c] for a resolution fraction: never above the dataset's size, never below MIN_SIDE."""
    h, w, c = native
    scale = lambda n: n if n <= MIN_SIDE else max(MIN_SIDE, int(round(n * fraction)))  # noqa: E731
    return [scale(h), scale(w), c]


def default_config(native: tuple[int, int, int]) -> dict:
    return {"alpha": DEFAULTS.alpha, "input": list(native), "blocks": [list(b) for b in DEFAULTS.blocks],
            "kernel": DEFAULTS.kernel, "stem_filters": DEFAULTS.stem_filters, "stem_stride": DEFAULTS.stem_stride}


def arch(cfg: dict) -> dict:
    """A candidate's arguments for host/model.build_model (and host/train.train) besides its input;
    leaderboards written before stem_stride was searched build with the default."""
    return {"alpha": cfg["alpha"], "blocks": [tuple(b) for b in cfg["blocks"]], "kernel": cfg["kernel"],
            "stem_filters": cfg["stem_filters"], "stem_stride": cfg.get("stem_stride", DEFAULTS.stem_stride)}


def build(cfg: dict, num_classes: int):
    """The Keras model of a candidate (host/model/architecture.py's builder, nothing added)."""
    from host.model.architecture import build_model

    return build_model(cfg["input"], num_classes, **arch(cfg))


def describe(cfg: dict) -> str:
    """Short text for tables: a0.5 21px/2 4blk k3 s16 w256 (/2: a stride-2 stem)."""
    stride = "/2" if cfg.get("stem_stride", 1) == 2 else ""
    return (f"a{cfg['alpha']:g} {cfg['input'][0]}px{stride} {len(cfg['blocks'])}blk k{cfg['kernel']} "
            f"s{cfg['stem_filters']} w{max(b[0] for b in cfg['blocks'])}")


def resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8 NHWC images resized (bilinear, as folder: datasets are) to hw."""
    from PIL import Image

    if tuple(x.shape[1:3]) == tuple(hw):
        return x
    gray = x.shape[-1] == 1
    out = [np.asarray(Image.fromarray(img[..., 0] if gray else img).resize((hw[1], hw[0]), Image.BILINEAR))
           for img in x]
    arr = np.stack(out)
    return arr[..., None] if gray else arr


def graph_facts(model_bytes: bytes) -> dict:
    """The graph hash (ops and tensor shapes/dtypes, not weights: latency does not depend on
    weights, so an untrained and a trained model share it) and the activation arena estimate."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - the only API that lists ops and their tensors

    def sig(i: int) -> str:
        t = tensors.get(i)
        return "-" if t is None else f"{np.dtype(t['dtype']).name}{list(map(int, t['shape']))}"

    text = "\n".join(f"{op['op_name']} {[sig(i) for i in op['inputs']]} {[sig(i) for i in op['outputs']]}"
                     for op in ops)
    return {"graph": hashlib.sha256(text.encode()).hexdigest()[:16],
            "arena_bytes": activation_arena_bytes(model_bytes), "arena_method": ARENA_METHOD}


ARENA_METHOD = "static memory plan (device/profiling/memplan.py)"


def activation_arena_bytes(model_bytes: bytes) -> int:
    """The activation arena TFLite's planner needs for this model (device/profiling/memplan.py's plan):
    a lower bound of the process's peak RSS, so a candidate whose arena alone exceeds the RSS
    budget cannot meet it."""
    import tempfile

    from device.profiling.memplan import plan_file

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(model_bytes)
        f.flush()
        return int(plan_file(f.name)["arena_bytes"])
