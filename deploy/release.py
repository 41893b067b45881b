"""Ship a bundle plus the agent as one release: send only what the board lacks, verify, switch.

The release id is the first 12 hex of a hash over (name, sha256) of every shipped file, so the
same bundle and agent always map to the same release and a re-deploy sends nothing.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import DeployError
from deploy.target import Target

BOARD_SCRIPT = (Path(__file__).parent / "board_release.py").read_text()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Release:
    id: str
    bundle_name: str
    files: dict[str, Path]        # name on the board -> local file
    hashes: dict[str, str]        # name -> sha256
    manifest: dict


def bundle_files(bundle: Path) -> tuple[dict, dict[str, Path]]:
    """The files of a bundle (manifest, variants, eval set), checked against the manifest."""
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise DeployError(f"{bundle} is not a bundle (no manifest.json); run `make quantize` first")
    try:
        manifest = json.loads(manifest_path.read_text())
        variants = manifest["variants"]
    except (ValueError, KeyError, TypeError) as e:
        raise DeployError(f"{manifest_path}: not a valid bundle manifest ({e})") from None
    files = {"manifest.json": manifest_path}
    entries = [(name, v) for name, v in variants.items()]
    if isinstance(manifest.get("eval"), dict):
        entries.append(("eval", manifest["eval"]))
    for label, entry in entries:
        path = bundle / entry.get("file", "")
        if not entry.get("file") or not path.is_file():
            raise DeployError(f"{bundle}: {label} file {entry.get('file')!r} is missing")
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise DeployError(f"{bundle}: {path.name} does not match the sha256 in manifest.json")
        files[entry["file"]] = path
    return manifest, files


def prepare(bundle: Path, agent: Path) -> Release:
    manifest, files = bundle_files(bundle)
    files["agent.pyz"] = agent
    hashes = {name: sha256_file(path) for name, path in files.items()}
    digest = hashlib.sha256("".join(f"{n} {h}\n" for n, h in sorted(hashes.items())).encode())
    return Release(digest.hexdigest()[:12], manifest.get("name", bundle.name), files, hashes, manifest)


def board_call(target: Target, command: str, request: dict, timeout: float = 300) -> dict:
    """Run board_release.py on the board with the board's python3 and parse its JSON answer."""
    cmd = f"python3 -c {shlex.quote(BOARD_SCRIPT)} {command} {shlex.quote(json.dumps(request))}"
    res = target.run(cmd, timeout=timeout)
    if not res.ok:
        reason = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"{target.name}: release {command} failed on the board: {reason}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def ship(target: Target, home: str, release: Release, *, log=print) -> dict:
    """Upload missing blobs, verify and switch `current`. Any failure leaves `current` as it was."""
    started = time.monotonic()
    have = set(board_call(target, "inventory", {"home": home, "files": release.hashes})["have"])
    sent_bytes = sent_files = 0
    token = secrets.token_hex(4)       # upload names of their own: parallel deploys never collide
    uploads: dict[str, str] = {}
    for name, path in sorted(release.files.items()):
        digest = release.hashes[name]
        if digest in have or digest in uploads:
            continue        # already on the board, or two names with one content: send once
        uploads[digest] = f"{digest}.{token}.part"
        try:
            target.put(path, f"{home}/blobs/{uploads[digest]}")
        except DeployError as e:
            raise DeployError(f"{e}{_free_space_hint(target, home)}; the previous release stays active") from None
        sent_bytes += path.stat().st_size
        sent_files += 1
    meta = {"bundle": release.bundle_name, "deployed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    answer = board_call(target, "commit", {"home": home, "id": release.id, "files": release.hashes,
                                            "uploads": uploads, "meta": meta})
    return {"release": release.id, "path": answer["release"], "previous": answer["previous"],
            "files_sent": sent_files, "bytes_sent": sent_bytes,
            "seconds": round(time.monotonic() - started, 2)}


def _free_space_hint(target: Target, home: str) -> str:
    """SFTP reports a full disk as a bare 'Failure': say how much room is left, if we still can."""
    try:
        res = target.run(f"df -Pk {shlex.quote(home)} | awk 'NR==2 {{print int($4/1024)}}'", timeout=15)
        free = res.stdout.strip()
        return f" ({free} MB free on the board)" if res.ok and free.isdigit() else ""
    except DeployError:
        return ""
