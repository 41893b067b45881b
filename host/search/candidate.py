"""A search candidate and the leaderboard that holds them, as leaderboard.json writes them.

A candidate gathers facts as it goes through the stages (static facts, the short untrained bench,
training per rung, the trained INT8 file, the final bench); each is None until that stage ran for
it, and is left out of the JSON then. The decisions (status, why, stage, broken) are re-derived on
every run from those facts.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

SCHEMA = "edgekit/search-v1"


@dataclass
class Candidate:
    id: str                         # c00, c01, ...: draw order; c00 is the default model
    config: dict                    # builder arguments (host/search/space.py)
    default: bool = False
    status: str = "pending"         # pending, over budget, failed, skipped (ladder), not trained, halved,
    #                                 finalist, winner, not reached
    why: str = ""
    static: dict | None = None      # params, macs, int8_size_bytes, arena_bytes, graph (hash): free, untrained
    short: dict | None = None       # the short bench of the untrained INT8 file (figures, or error)
    train: dict | None = None       # epochs (as text) -> val_accuracy, epochs_run, seconds, paused_s
    stage: str | None = None        # how far it got: static, measured, trained, finalist
    broken: list | None = None      # the budgets it broke in this run (decide.broken's entries)
    int8: dict | None = None        # the trained INT8 file: epochs, val_top1, host_top1, size_bytes, sha256
    final: dict | None = None       # its bench with the profile's normal settings, plus device_top1
    extra: dict = field(default_factory=dict)   # keys this version does not know, kept as they were

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in known},
                   extra={k: v for k, v in d.items() if k not in known})

    def to_dict(self) -> dict:
        """The leaderboard entry: every field that has a value, in field order."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    def figures(self) -> dict:
        """The latest measured figures: the final bench if it ran, else the short one."""
        return self.final or self.short or {}


@dataclass
class Leaderboard:
    """leaderboard.json: its top-level keys (in their order) and the candidates."""
    doc: dict                       # every top-level key; "candidates" is a placeholder for the order
    candidates: list[Candidate]

    @classmethod
    def new(cls, name: str, plan: dict, configs: list[dict]) -> "Leaderboard":
        return cls({"schema": SCHEMA, "name": name, "plan": plan, "runs": [], "candidates": None},
                   [Candidate(f"c{i:02d}", c, i == 0) for i, c in enumerate(configs)])

    @classmethod
    def from_dict(cls, d: dict) -> "Leaderboard":
        return cls({**d, "candidates": None}, [Candidate.from_dict(c) for c in d.get("candidates", [])])

    def to_dict(self) -> dict:
        return {k: [c.to_dict() for c in self.candidates] if k == "candidates" else v for k, v in self.doc.items()}
