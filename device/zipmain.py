"""agent.pyz's entry point: device/build.py writes this file into the archive as __main__.py.

Why it unpacks: Python never caches bytecode for modules it imports from a zip, so every start of
agent.pyz compiled each agent module it imported again (about 0.15 s per start on the workstation,
several times that on a Pi, paid by every `infer`, every bench child and every service restart).
The first start of an archive unpacks its `device/` package once into a private per-user cache,
named by the archive's sha256, and imports it from there, where Python keeps the bytecode as for
any installed package. Any obstacle (a read-only or shared home, a cache owned by someone else)
and the agent runs from the zip, as before: slower to start, never broken.

Old unpacked versions are not deleted (about 1 MB each; a long-running service may still import
from one). Stdlib only: nothing else is importable yet when this runs.
"""
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile


def _cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgekit", "agent-code")


def _private(path: str) -> bool:
    """Ours alone: code imported from a folder others can write to could be anybody's."""
    st = os.stat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


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
        if not os.path.isfile(os.path.join(target, "device", "__init__.py")):
            work = tempfile.mkdtemp(prefix=".unpack-", dir=root)
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(work, [n for n in zf.namelist() if n.startswith("device/")])
                os.rename(work, target)        # atomic: a start racing us sees all of it or none
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
                if not os.path.isfile(os.path.join(target, "device", "__init__.py")):
                    return None                # not the other start winning the race: a real failure
        return target if _private(target) else None
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
    sys.exit(main())
