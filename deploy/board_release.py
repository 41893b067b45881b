"""Runs ON THE BOARD (python3 -c, stdlib only): the content store and the atomic release switch.

Layout under the board's edgekit home:
  blobs/<sha256>          every file ever shipped, named by its hash (so nothing is sent twice)
  releases/<id>/          one release: hard links to blobs under their real names + release.json
  current -> releases/<id>  switched with one rename(2), so it is always a complete release

Commands (argv[1]), with a JSON request in argv[2]; the answer is one JSON line on stdout:
  inventory  {"home", "files": {name: sha}}      -> {"have": [sha...]}
  commit     {"home", "id", "files", "uploads": {sha: part name}, "meta"}
                                                 -> {"release": path, "previous": id|null}
                                                 or {"missing": [sha...]} when a blob the inventory
                                                 reported is gone (another deploy pruned it): the
                                                 host uploads those and commits again
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time

KEEP_RELEASES = 3
STALE_UPLOAD_S = 3600


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inventory(req):
    blobs = os.path.join(req["home"], "blobs")
    wanted = set(req["files"].values())
    have = [s for s in wanted if os.path.isfile(os.path.join(blobs, s))]
    return {"have": have}


RESERVED = ("release.json",)   # written by commit itself


def check_request(files, uploads, rid):
    """The host checks names too; the board checks again, because a name is joined onto a path here."""
    if not re.fullmatch(r"[0-9a-f]{12}", rid):
        raise SystemExit("bad release id %r" % rid)
    for name, digest in files.items():
        if not name or os.path.basename(name) != name or name.startswith(".") or name in RESERVED or "\0" in name:
            raise SystemExit("refusing file name %r (a plain name, not hidden, not %s)"
                             % (name, " or ".join(RESERVED)))
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise SystemExit("bad sha256 %r for %s" % (digest, name))
    for part in uploads.values():
        if os.path.basename(part) != part or not part.endswith(".part") or part.startswith("."):
            raise SystemExit("bad upload name %r" % part)


def missing_blobs(blobs, files, uploads):
    """Hashes with neither this deploy's upload nor a blob: pruned since the inventory."""
    return sorted({want for want in files.values()
                   if not os.path.exists(os.path.join(blobs, uploads.get(want) or want))
                   and not os.path.exists(os.path.join(blobs, want))})


def verify_blobs(blobs, files, uploads):
    """Promote this deploy's uploads after checking their hash; re-check existing blobs too."""
    for name, want in sorted(files.items()):
        blob = os.path.join(blobs, want)
        part = os.path.join(blobs, uploads[want]) if want in uploads else None
        if part and not os.path.exists(part):
            part = None          # sent once for two names: the first one promoted it already
        path = part or blob
        if not os.path.exists(path):
            raise SystemExit("missing upload for %s" % name)
        got = sha256(path)
        if got != want:
            os.unlink(path)
            raise SystemExit("sha256 mismatch for %s (got %s, want %s); the file was removed, "
                             "deploy again" % (name, got[:12], want[:12]))
        if part:
            os.replace(part, blob)


def link_or_copy(src, dst):
    """Hard link, or (other file system, no link support) a copy; neither replaces an existing file."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise SystemExit("refusing to overwrite %s" % dst)
    except OSError:
        pass
    try:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise SystemExit("refusing to overwrite %s" % dst)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)


def current_id(home):
    link = os.path.join(home, "current")
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def commit(req):
    """Verify, build the release directory, switch `current`; one deploy at a time per board."""
    with open(os.path.join(req["home"], ".deploy.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _commit(req)


def _commit(req):
    home, rid, files = req["home"], req["id"], req["files"]
    blobs = os.path.join(home, "blobs")
    releases = os.path.join(home, "releases")
    os.makedirs(releases, exist_ok=True)
    uploads = req.get("uploads", {})
    check_request(files, uploads, rid)
    missing = missing_blobs(blobs, files, uploads)
    if missing:
        return {"missing": missing}
    verify_blobs(blobs, files, uploads)
    final = os.path.join(releases, rid)
    if not os.path.isfile(os.path.join(final, "release.json")):
        tmp = "%s.tmp%d" % (final, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for name, digest in files.items():
            link_or_copy(os.path.join(blobs, digest), os.path.join(tmp, name))
        with open(os.path.join(tmp, "release.json"), "w") as f:
            json.dump(dict(req["meta"], id=rid, files=files), f, indent=1, sort_keys=True)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    previous = current_id(home)
    if previous != rid:
        new_link = os.path.join(home, "current.new")
        if os.path.lexists(new_link):
            os.unlink(new_link)
        os.symlink(os.path.join("releases", rid), new_link)
        os.replace(new_link, os.path.join(home, "current"))   # the atomic switch
    prune(home, keep={r for r in (rid, previous) if r})
    return {"release": final, "previous": previous}


def prune(home, keep):
    """Keep the newest few releases (and the previous one, for rollback); drop unreferenced blobs."""
    releases = os.path.join(home, "releases")
    entries = sorted((e for e in os.scandir(releases) if e.is_dir()), key=lambda e: e.stat().st_mtime,
                     reverse=True)
    kept = set(keep)
    for e in entries:
        if ".tmp" in e.name:
            shutil.rmtree(e.path, ignore_errors=True)
        elif len(kept) < KEEP_RELEASES or e.name in kept:
            kept.add(e.name)
        else:
            shutil.rmtree(e.path, ignore_errors=True)
    used = set()
    for rid in kept:
        try:
            with open(os.path.join(releases, rid, "release.json")) as f:
                used.update(json.load(f)["files"].values())
        except (OSError, ValueError, KeyError):
            pass
    blobs = os.path.join(home, "blobs")
    for e in os.scandir(blobs):
        if e.name.endswith(".part"):   # an interrupted upload, unless it is another deploy's, in flight
            if time.time() - e.stat().st_mtime > STALE_UPLOAD_S:
                os.unlink(e.path)
        elif e.name not in used:
            os.unlink(e.path)


def main():
    command, req = sys.argv[1], json.loads(sys.argv[2])
    os.makedirs(os.path.join(req["home"], "blobs"), exist_ok=True)
    result = {"inventory": inventory, "commit": commit}[command](req)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
