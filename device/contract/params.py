"""Every benchmark setting, declared once (as TFLite's BenchmarkParams does).

One `Param` gives a setting's name, type, default, allowed range and help. From this table come
the agent's `bench` flags (`--name`), the keys of a board profile (profiles/*.yaml) and their
validation, and the command line deploy builds for the agent. A profile that does not set a
value gets the default here. Adding a setting = one entry below plus the code that uses it.
Stdlib only: this runs on the board.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

XNNPACK_MODES = {"on": [True], "off": [False], "both": [True, False]}


@dataclass(frozen=True)
class Param:
    name: str                    # the agent flag (--name) and the profile key
    kind: str                    # int | float | threads | choice
    default: Any
    help: str
    minimum: Optional[float] = None
    exclusive: bool = False      # the value must be > minimum, not >=
    choices: Tuple[str, ...] = ()
    aliases: Tuple[str, ...] = ()   # older profile keys for the same setting

    def convert(self, value: Any) -> Any:
        """A value from the command line (text) or a profile (YAML) -> the typed value, or
        ValueError with a one-line reason. Booleans are accepted only where they mean on/off."""
        if self.kind == "threads":
            return _threads(value)
        if self.kind == "choice":
            if isinstance(value, bool):          # profile `xnnpack: false` means off
                value = "on" if value else "off"
            if value not in self.choices:
                raise ValueError(f"expected one of {', '.join(self.choices)}, got {value!r}")
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {'an integer' if self.kind == 'int' else 'a number'}, "
                             f"got {value!r}") from None
        if self.kind == "int" and isinstance(value, float) and value != number:
            raise ValueError(f"expected an integer, got {value!r}")
        if not number == number:                 # NaN
            raise ValueError("expected a number, got NaN")
        if self.minimum is not None:
            if number < self.minimum or (self.exclusive and number == self.minimum):
                what = "an integer" if self.kind == "int" else "a number"
                raise ValueError(f"expected {what} {'>' if self.exclusive else '>='} {self.minimum:g}, "
                                 f"got {value!r}")
        return number

    def to_text(self, value: Any) -> str:
        return ",".join(str(v) for v in value) if self.kind == "threads" else str(value)


def _threads(value: Any) -> List[int]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        threads = [int(str(t).strip()) for t in items if str(t).strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of integers, got {value!r}") from None
    if not threads or any(t < 1 for t in threads):
        raise ValueError(f"thread counts must be integers >= 1, got {value!r}")
    return threads


BENCH_PARAMS: Tuple[Param, ...] = (
    Param("num_threads", "threads", [1], "interpreter threads; a comma-separated list is a sweep, e.g. 1,2,4",
          aliases=("threads",)),
    Param("num_runs", "int", 100, "timed invocations per setting (at least; see min_secs)", minimum=1),
    Param("warmup_runs", "int", 10, "untimed invocations before timing", minimum=0),
    Param("min_secs", "float", 0.0, "keep timing until this many seconds have passed", minimum=0),
    Param("max_samples", "int", 10_000, "stop a setting after this many timed invocations (memory bound)",
          minimum=1),
    Param("xnnpack", "choice", "on", "XNNPACK delegate: on, off (builtin kernels) or both (a sweep)",
          choices=tuple(XNNPACK_MODES)),
    Param("timeout", "float", 300.0, "seconds per model before its child process is killed", minimum=0,
          exclusive=True, aliases=("timeout_s",)),
    Param("cooldown", "float", 0.0, "seconds of rest between models, so a passively cooled board recovers",
          minimum=0, aliases=("cooldown_s",)),
)
BY_NAME: Dict[str, Param] = {p.name: p for p in BENCH_PARAMS}
ALIASES: Dict[str, str] = {a: p.name for p in BENCH_PARAMS for a in p.aliases}


def defaults() -> Dict[str, Any]:
    return {p.name: list(p.default) if isinstance(p.default, list) else p.default for p in BENCH_PARAMS}


def from_mapping(data: Dict[str, Any]) -> Dict[str, Any]:
    """Complete, validated settings from a partial mapping (a profile's keys, aliases allowed).
    Raises ValueError naming the key; unknown keys are the caller's business."""
    values = defaults()
    for key, value in data.items():
        name = ALIASES.get(key, key)
        try:
            values[name] = BY_NAME[name].convert(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return values


def to_argv(values: Dict[str, Any], names: Optional[Tuple[str, ...]] = None) -> List[str]:
    """The agent's flags for these settings (for `names`, default all), every one explicit: a board
    may run an agent with other defaults."""
    argv: List[str] = []
    for p in BENCH_PARAMS:
        if names is None or p.name in names:
            argv += [f"--{p.name}", p.to_text(values[p.name])]
    return argv


def add_arguments(parser: argparse.ArgumentParser, names: Optional[Tuple[str, ...]] = None) -> None:
    """The agent's flags for `names` (default: all), with types, defaults and help from the table."""
    for p in BENCH_PARAMS:
        if names is None or p.name in names:
            parser.add_argument(f"--{p.name}", type=_argparse_type(p), default=defaults()[p.name],
                                help=f"{p.help} (default {p.to_text(p.default)})")


def _argparse_type(p: Param):
    def parse(text: str) -> Any:
        try:
            return p.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = p.name      # argparse names the type in its messages
    return parse
