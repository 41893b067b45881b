"""What every model importer shares: the identified `Source`, the one-line `ModelError`, and the
`Importer` slot each format fills (host/convert/importers.py lists them, in one place).

An importer says whether a path is its format (`identify`, never raising), refuses a path of its
format that cannot work (`check`, one line naming the cause and the way out), and turns the model
into a SavedModel for the converter (`to_saved_model`); `.tflite` files are taken as they are, so
their importer has no `to_saved_model`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from device.contract.fileio import sha256_file


class ModelError(Exception):
    """The model cannot be used as given (one line: cause and what to do). Exit 2."""


@dataclass
class Source:
    path: Path
    format: str                       # an Importer's format: keras | h5 | saved_model | tflite
    sha256: str
    fixups: list[str] = field(default_factory=list)

    def origin(self) -> dict:
        out = {"path": str(self.path.resolve()), "format": self.format, "sha256": self.sha256}
        if self.fixups:
            out["fixups"] = self.fixups
        return out


@dataclass(frozen=True)
class Importer:
    """One model format: how to recognise it, what to refuse, and how to reach a SavedModel."""
    format: str                                  # recorded as the manifest's origin.format
    hint: str                                    # how refusals name it: ".keras", "a SavedModel directory"
    identify: Callable[[Path], bool]             # is this path this format? (cheap, never raises)
    to_saved_model: Optional[Callable[[Source, Path, Optional[str]], tuple[Path, Optional[str]]]] = None
    # (source, scratch dir, wanted signature) -> (SavedModel dir, signature); None = converted already
    check: Callable[[Path], None] = lambda path: None   # raise ModelError for a path it cannot take
    directory: bool = False                      # a directory (digested file by file), not one file
    digest: Optional[Callable[[Path], str]] = None   # how to digest a path that is not plainly a file

    def source(self, path: Path) -> Source:
        if self.digest is not None:
            return Source(path, self.format, self.digest(path))
        return Source(path, self.format, dir_sha256(path) if self.directory else sha256_file(path))


def dir_sha256(root: Path) -> str:
    """One digest over a directory: sorted relative paths and each file's sha256."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()} {sha256_file(f)}\n".encode())
    return h.hexdigest()


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 300 characters), for one-line refusals."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
