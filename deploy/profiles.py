"""Board profiles (profiles/*.yaml): what to run on a board and which budgets it must meet.

Validated on load: an unknown key (a typo) is an error, not silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from deploy.errors import DeployError
from deploy.settings import PROFILES_DIR

BUDGET_KEYS = {"max_p50_us": float, "max_p99_us": float, "max_peak_rss_mb": float, "min_top1": float}


@dataclass
class Profile:
    name: str
    description: str = ""
    arch: list[str] = field(default_factory=lambda: ["aarch64"])   # expected arch(es)
    match_model: str = ""          # substring of /proc/device-tree/model that picks this profile
    threads: list[int] = field(default_factory=lambda: [1])
    num_runs: int = 50
    warmup_runs: int = 5
    min_secs: float = 0.0
    xnnpack: bool = True           # False: run with --no_xnnpack
    runtime: str = "auto"          # auto | ai-edge-litert | tflite-runtime
    cooldown_s: float = 0.0        # pause between models so a passively cooled board recovers
    timeout_s: float = 900.0       # per agent command on the board
    variants: list[str] = field(default_factory=list)   # empty: every variant in the bundle
    budgets: dict = field(default_factory=dict)


_TYPES = {"name": str, "description": str, "arch": list, "match_model": str, "threads": list,
          "num_runs": int, "warmup_runs": int, "min_secs": (int, float), "xnnpack": bool,
          "runtime": str, "cooldown_s": (int, float), "timeout_s": (int, float),
          "variants": list, "budgets": dict}


def validate(data: object, source: str) -> Profile:
    if not isinstance(data, dict):
        raise DeployError(f"{source}: a profile must be a mapping of keys")
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DeployError(f"{source}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    for key, value in data.items():
        if not isinstance(value, _TYPES[key]) or (key != "xnnpack" and isinstance(value, bool)):
            raise DeployError(f"{source}: {key} has the wrong type ({type(value).__name__})")
    if "name" not in data:
        raise DeployError(f"{source}: missing key name")
    threads = data.get("threads", [1])
    if not threads or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in threads):
        raise DeployError(f"{source}: threads must be a list of positive integers")
    if data.get("runtime", "auto") not in ("auto", "ai-edge-litert", "tflite-runtime"):
        raise DeployError(f"{source}: runtime must be auto, ai-edge-litert or tflite-runtime")
    for key, value in data.get("budgets", {}).items():
        if key not in BUDGET_KEYS:
            raise DeployError(f"{source}: unknown budget {key} (allowed: {', '.join(BUDGET_KEYS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DeployError(f"{source}: budget {key} must be a number")
    # the agent refuses num_runs 0, and a zero timeout would fail every command: say so at load
    for key, least, strict in (("num_runs", 1, False), ("warmup_runs", 0, False), ("min_secs", 0, False),
                               ("cooldown_s", 0, False), ("timeout_s", 0, True)):
        if key in data and (data[key] <= least if strict else data[key] < least):
            raise DeployError(f"{source}: {key} must be {'>' if strict else '>='} {least} (got {data[key]})")
    return Profile(**data)


def load(name_or_path: str, directory: Path = PROFILES_DIR) -> Profile:
    """A profile by name (profiles/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise DeployError(f"no profile {name_or_path!r} (available: {names})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DeployError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return validate(data, str(path))


def all_profiles(directory: Path = PROFILES_DIR) -> list[Profile]:
    return [load(str(p)) for p in sorted(directory.glob("*.yaml"))]


def pick(model: str, arch: str, is_local: bool, directory: Path = PROFILES_DIR) -> Profile:
    """No PROFILE given: the board's /proc/device-tree/model first, then its arch."""
    if is_local:
        return load("local", directory)
    profiles = all_profiles(directory)
    for p in profiles:
        if p.match_model and p.match_model.lower() in model.lower() and arch in p.arch:
            return p
    by_arch = {"aarch64": "generic-aarch64", "armv7l": "armv7l", "x86_64": "local"}
    return load(by_arch.get(arch, "generic-aarch64"), directory)
