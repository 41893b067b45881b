"""Board profiles (profiles/*.yaml): what to run on a board and which budgets it must meet.

Validated on load: an unknown key (a typo) is an error, not silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy.boards.runtime import NAMES as runtime_names
from deploy.errors import UsageError
from deploy.settings import PROFILES_DIR
from device.contract import params

BUDGET_KEYS = ("max_p50_us", "max_p99_us", "max_peak_rss_mb", "min_top1")


@dataclass
class Profile:
    """A board profile. `bench` holds every benchmark setting (device/contract/params.py), complete: a key
    the YAML file does not set has the agent's own default."""
    name: str
    description: str = ""
    arch: list[str] = field(default_factory=lambda: ["aarch64"])   # expected arch(es)
    match_model: str = ""          # substring of /proc/device-tree/model that picks this profile
    runtime: str = "auto"          # auto | ai-edge-litert | tflite-runtime
    variants: list[str] = field(default_factory=list)   # empty: every variant in the bundle
    budgets: dict = field(default_factory=dict)
    bench: dict = field(default_factory=params.defaults)

    @property
    def threads(self) -> list[int]:
        return self.bench["num_threads"]


_TYPES = {"name": str, "description": str, "arch": list, "match_model": str, "runtime": str,
          "variants": list, "budgets": dict}
RUNTIMES = ("auto",) + runtime_names


def validate(data: object, source: str) -> Profile:
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a profile must be a mapping of keys")
    bench_keys = set(params.BY_NAME) | set(params.ALIASES)
    unknown = sorted(set(data) - set(_TYPES) - bench_keys)
    if unknown:
        allowed = ", ".join(sorted(set(_TYPES) | set(params.BY_NAME)))
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
    for key, kind in _TYPES.items():
        if key in data and not isinstance(data[key], kind):
            raise UsageError(f"{source}: {key} has the wrong type ({type(data[key]).__name__})")
    if "name" not in data:
        raise UsageError(f"{source}: missing key name")
    if data.get("runtime", "auto") not in RUNTIMES:
        raise UsageError(f"{source}: runtime must be {', '.join(RUNTIMES)}")
    for key, value in data.get("budgets", {}).items():
        if key not in BUDGET_KEYS:
            raise UsageError(f"{source}: unknown budget {key} (allowed: {', '.join(BUDGET_KEYS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UsageError(f"{source}: budget {key} must be a number")
    try:   # the same rules the agent applies to its flags, so a bad value fails here, not on the board
        bench = params.from_mapping({k: v for k, v in data.items() if k in bench_keys})
    except ValueError as e:
        raise UsageError(f"{source}: {e}") from None
    return Profile(bench=bench, **{k: v for k, v in data.items() if k in _TYPES})


def load(name_or_path: str, directory: Path = PROFILES_DIR) -> Profile:
    """A profile by name (profiles/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise UsageError(f"no profile {name_or_path!r} (available: {names})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
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
