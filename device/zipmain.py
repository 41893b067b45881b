"""agent.pyz's entry point: device/build.py writes this file into the archive as __main__.py.

Why it unpacks: Python never caches bytecode for modules it imports from a zip, so every start of
agent.pyz compiled each agent module it imported again (about 0.15 s per start on the workstation,
several times that on a Pi, paid by every `infer`, every bench child and every service restart).
The first start of an archive unpacks its `device/` package once into a private per-user cache,
named by the archive's sha256, and imports it from there, where Python keeps the bytecode as for
any installed package. Any obstacle (a read-only or shared home, a cache owned by someone else)
and the agent runs from the zip, as before: slower to start, never broken.

Old versions (about 1 MB each) are removed by the first start of a new one, unless an agent still
runs from them: every agent holds a shared lock on its version's `.in-use` file for as long as it
runs (a long-running service may import a module late), and a version is removed only under an
exclusive lock nobody else holds. Stdlib only: nothing else is importable yet when this runs.
"""
import hashlib
import os
import shutil
import sys
import tempfile
import time
import zipfile

try:
    import fcntl
except ImportError:         # not a POSIX board: no locks, so nothing is ever removed
    fcntl = None

_HELD = []                  # the lock files of the version this process runs from, open for its life
LOCK = ".in-use"


def _cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgekit", "agent-code")


def _private(path: str) -> bool:
    """Ours alone: code imported from a folder others can write to could be anybody's."""
    st = os.stat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _complete(target: str) -> bool:
    return os.path.isfile(os.path.join(target, "device", "__init__.py"))


def _unpack(archive: str, root: str, target: str) -> bool:
    """Unpack into `target` (atomically: a start racing us sees all of it or none). False: failed."""
    work = tempfile.mkdtemp(prefix=".unpack-", dir=root)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(work, [n for n in zf.namelist() if n.startswith("device/")])
        os.rename(work, target)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
        return _complete(target)        # another start won the race: fine; else a real failure
    return True


def _hold(target: str) -> bool:
    """Hold a shared lock on the version for this process's life. False: it was removed meanwhile."""
    if fcntl is None:
        return _complete(target)
    try:
        fd = os.open(os.path.join(target, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)      # waits while a pruner removes it; then the check below fails
    if _complete(target):
        _HELD.append(fd)
        return True
    os.close(fd)
    return False


def _prune(root: str, keep: str) -> None:
    """Remove every other unpacked version no running agent holds, and unpack leftovers of crashed starts."""
    if fcntl is None:
        return
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name == keep:
            continue
        if name.startswith(".unpack-"):
            if time.time() - os.stat(path).st_mtime > 3600:
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass                        # an agent runs from it: kept
        finally:
            os.close(fd)


def unpacked(archive: str):
    """The folder holding this archive's `device/` package, unpacked, or None to import from the zip."""
    try:
        with open(archive, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        root = _cache_root()
        os.makedirs(root, mode=0o700, exist_ok=True)
        if not _private(root):
            return None
        target = os.path.join(root, digest)
        for _ in range(3):              # (removed between our check and our lock: unpack it again)
            fresh = not _complete(target)
            if fresh and not _unpack(archive, root, target):
                return None
            if _hold(target):
                if fresh:               # a new version arrived: the old ones may go
                    _prune(root, digest)
                return target if _private(target) else None
        return None
    except (OSError, zipfile.BadZipFile):
        return None


def main() -> int:
    here = sys.path[0]                  # the archive, as the zipapp runner put it
    if zipfile.is_zipfile(here) and os.environ.get("EDGEKIT_AGENT_UNPACK", "1") != "0":
        folder = unpacked(here)
        if folder:
            sys.path[0] = folder
    from device.cli import main as cli_main
    return cli_main()


if __name__ == "__main__":
    code = main()
    from device.errors import exit_process
    exit_process(code)
