"""The one place for atomic writes, file hashes and file-name cleaning, on every side (stdlib only,
Python 3.9+).

A reader (or a later step) never sees a half-written file: data goes to a temp file in the same
directory, is fsynced, then renamed over the target (`atomic_write_*`) or hard-linked to a name
that must not exist yet (`write_new`, which never overwrites an earlier file).
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def safe_name(text: str) -> str:
    """`text` usable as a file name: every run of characters outside A-Z a-z 0-9 . _ - becomes one
    "_", so a board, bundle or variant name can never reach another directory or a shell."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_copy(directory: Path, name: str, data: bytes) -> Path:
    """A fsynced temp file with `data` and the usual file mode (mkstemp makes 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink()
        raise
    return Path(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Readers see the old file or the new one, never half. A target that is not a regular file
    (`--json /dev/null`, a FIFO) is written straight into: renaming over it would replace the
    device with a file, which for root means the machine's /dev/null."""
    path = Path(path)
    try:
        special = not stat.S_ISREG(os.stat(path).st_mode) and not stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        special = False
    if special:
        with open(path, "wb") as f:
            f.write(data)
        return
    tmp = _temp_copy(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink()
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_new(directory: PathLike, name_for: Callable[[int], str], data: bytes, tries: int = 1000) -> Path:
    """Write `data` under the first free name `name_for(0)`, `name_for(1)`, ...: never overwrites."""
    directory = Path(directory)
    tmp = _temp_copy(directory, name_for(0), data)
    try:
        for n in range(tries):
            path = directory / name_for(n)
            try:
                os.link(tmp, path)       # atomic, and refuses to replace an existing file
                return path
            except FileExistsError:
                continue
        raise OSError(f"too many files named like {name_for(0)} in {directory}")
    finally:
        tmp.unlink()
