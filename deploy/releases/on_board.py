"""Runs ON THE BOARD (python3 -c, stdlib only): the content store and the atomic release switch.

Layout under the board's edgekit home:
  blobs/<sha256>          every file ever shipped, named by its hash (so nothing is sent twice)
  releases/<id>/          one release: hard links to blobs under their real names + release.json
  current -> releases/<id>  switched with one rename(2), so it is always a complete release
  history.jsonl           one line per switch {utc, id, from}: what "previous" means for rollback
  serve.json              written by a running `serve --follow` (pid, port, release it serves)
  served -> releases/<id>   the release the service last served (a restart starts there)

Commands (argv[1]), with a JSON request in argv[2]; the answer is one JSON line on stdout:
  inventory  {"home", "files": {name: sha}}      -> {"have": [sha...]}
  commit     {"home", "id", "files", "uploads": {sha: part name}, "meta"}
                                                 -> {"release": path, "previous": id|null}
                                                 or {"missing": [sha...]} when a blob the inventory
                                                 reported is gone (another deploy pruned it): the
                                                 host uploads those and commits again
  list       {"home"}                            -> {"releases": [{id, bundle, created, size_bytes,
                                                    current, served}], "current", "served"}
  switch     {"home", "id": id|null}             -> {"release", "previous"}   (rollback; null: the
                                                    release deployed before the current one)
  prune      {"home", "keep": N}                 -> {"removed": [id...], "freed_bytes"}  keeps the N
                                                    most recently used releases, never current/served
  served     {"home", "release", "timeout"}      -> {"service": false} or {"service": true, "release",
                                                    "sha256", "error"}: waits (GET /info on the
                                                    service's loopback port) until the service serves
                                                    `release` or reports why it will not
"""
import fcntl
import hashlib
import http.client
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
    previous = switch_to(home, rid)
    return {"release": final, "previous": previous}


def switch_to(home, rid):
    """Point `current` at releases/<rid> with one rename(2) and note it in history.jsonl."""
    previous = current_id(home)
    if previous != rid:
        new_link = os.path.join(home, "current.new")
        if os.path.lexists(new_link):
            os.unlink(new_link)
        os.symlink(os.path.join("releases", rid), new_link)
        os.replace(new_link, os.path.join(home, "current"))   # the atomic switch
        with open(os.path.join(home, "history.jsonl"), "a") as f:
            f.write(json.dumps({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "id": rid, "from": previous}) + "\n")
    return previous


def history(home):
    try:
        with open(os.path.join(home, "history.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def complete(home, rid):
    return os.path.isfile(os.path.join(home, "releases", rid, "release.json"))


def previous_of(home, current):
    """The release deployed just before `current` (by release.json's deployed_utc), so repeated
    rollbacks walk back in time instead of toggling between two releases."""
    rows = listing({"home": home})["releases"]          # sorted by creation time
    ids = [r["id"] for r in rows]
    if current not in ids:
        return ids[-1] if ids else None
    i = ids.index(current)
    return ids[i - 1] if i > 0 else None


def switch(req):
    """Rollback: to a named release, or to the one deployed before the current one."""
    home = req["home"]
    with open(os.path.join(home, ".deploy.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = current_id(home)
        rid = req.get("id")
        if rid is None:
            rid = previous_of(home, current)
            if rid is None:
                raise SystemExit("no release older than %s to roll back to (see `make releases`)" % current)
        if not re.fullmatch(r"[0-9a-f]{12}", rid) or not complete(home, rid):
            raise SystemExit("no release %s on the board (see `make releases`)" % rid)
        return {"release": rid, "previous": switch_to(home, rid)}


def served_state(home):
    """The running service's state file, if its process is still alive."""
    try:
        with open(os.path.join(home, "serve.json")) as f:
            state = json.load(f)
        os.kill(int(state["pid"]), 0)
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return None


def release_size(path):
    total = 0
    for e in os.scandir(path):
        if e.is_file(follow_symlinks=False):
            total += e.stat().st_size
    return total


def listing(req):
    home = req["home"]
    root = os.path.join(home, "releases")
    state = served_state(home)
    served = state.get("release") if state else None
    current = current_id(home)
    out = []
    for e in sorted(os.scandir(root), key=lambda e: e.name) if os.path.isdir(root) else []:
        if not e.is_dir() or ".tmp" in e.name:
            continue
        try:
            with open(os.path.join(e.path, "release.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        out.append({"id": e.name, "bundle": meta.get("bundle"), "created": meta.get("deployed_utc"),
                    "size_bytes": release_size(e.path), "current": e.name == current, "served": e.name == served,
                    "_mtime": e.stat().st_mtime})
    out.sort(key=lambda r: (r["created"] or "", r.pop("_mtime")))
    return {"releases": out, "current": current, "served": served}


def prune(req):
    """Keep the `keep` most recently switched-to releases (never current nor served); drop blobs
    no kept release uses. Returns what was removed and how many bytes that freed."""
    home, keep = req["home"], max(1, int(req.get("keep", KEEP_RELEASES)))
    with open(os.path.join(home, ".deploy.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prune(home, keep)


def _prune(home, keep):
    releases = os.path.join(home, "releases")
    state = served_state(home)
    served_link = os.path.join(home, "served")        # where a restarted service starts (see serve.sh)
    last_served = os.path.basename(os.readlink(served_link)) if os.path.islink(served_link) else None
    protected = {r for r in (current_id(home), state and state.get("release"), state and state.get("agent_release"),
                             last_served) if r}
    last_used = {}
    for i, entry in enumerate(history(home)):
        last_used[entry.get("id")] = i
    entries = [e for e in os.scandir(releases) if e.is_dir()] if os.path.isdir(releases) else []
    entries.sort(key=lambda e: (last_used.get(e.name, -1), e.stat().st_mtime), reverse=True)
    kept, removed, freed = set(protected), [], 0
    for e in entries:
        if ".tmp" in e.name:
            if time.time() - e.stat().st_mtime > STALE_UPLOAD_S:
                shutil.rmtree(e.path, ignore_errors=True)
        elif e.name in kept:
            continue
        elif len(kept) < keep:
            kept.add(e.name)
        else:
            freed += sum(f.stat().st_size for f in os.scandir(e.path)
                         if f.is_file(follow_symlinks=False) and f.stat().st_nlink == 1)
            shutil.rmtree(e.path, ignore_errors=True)
            removed.append(e.name)
    used = set()
    for e in os.scandir(releases):     # every release left, kept or in the making
        try:
            with open(os.path.join(e.path, "release.json")) as f:
                used.update(json.load(f)["files"].values())
        except (OSError, ValueError, KeyError):
            pass
    blobs = os.path.join(home, "blobs")
    for e in os.scandir(blobs):
        if e.name.endswith(".part"):   # an interrupted upload, unless it is another deploy's, in flight
            if time.time() - e.stat().st_mtime > STALE_UPLOAD_S:
                freed += e.stat().st_size
                os.unlink(e.path)
        elif e.name not in used:
            freed += e.stat().st_size
            os.unlink(e.path)
    return {"removed": removed, "kept": sorted(kept), "freed_bytes": freed}


def served(req):
    """Wait until the running service serves `release`, reports it will not, or the time is up."""
    home, want = req["home"], req.get("release")
    deadline = time.time() + float(req.get("timeout", 60))
    answer = {"service": False}
    while True:
        state = served_state(home)
        if state is None:
            return {"service": False}
        info = None
        try:
            conn = http.client.HTTPConnection(_loopback(state.get("host")), int(state["port"]), timeout=5)
            headers = {"Authorization": "Bearer " + state["token"]} if state.get("token") else {}
            conn.request("GET", "/info", headers=headers)
            resp = conn.getresponse()
            if resp.status == 200:
                info = json.loads(resp.read())
            conn.close()
        except (OSError, ValueError, http.client.HTTPException):
            pass
        if info is not None and not info.get("follow"):
            return {"service": True, "follows": False, "release": info.get("release")}
        if info is not None:
            error = info.get("switch_error") or {}
            answer = {"service": True, "release": info.get("release"), "sha256": info.get("sha256"),
                      "error": error.get("error") if error.get("release") == want else None}
            if want is None or info.get("release") == want or answer["error"]:
                return answer
        if time.time() >= deadline:
            answer = dict(answer, service=True, timed_out=True)
            return answer
        time.sleep(0.1)


def _loopback(host):
    """The service binds 127.0.0.1 (or an address given with --bind); 0.0.0.0/:: mean any."""
    return "127.0.0.1" if host in (None, "", "0.0.0.0", "::") else host


def main():
    command, req = sys.argv[1], json.loads(sys.argv[2])
    os.makedirs(os.path.join(req["home"], "blobs"), exist_ok=True)
    result = {"inventory": inventory, "commit": commit, "list": listing, "switch": switch, "prune": prune,
              "served": served}[command](req)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
