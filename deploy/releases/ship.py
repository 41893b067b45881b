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

from deploy.errors import DeployError, UsageError
from deploy.targets.base import Target
from device.contract.fileio import sha256_file

BOARD_SCRIPT = (Path(__file__).parent / "on_board.py").read_text()
# Names a release gives its own files; a bundle file must not take them (nor a path, nor a dot-name).
RESERVED_NAMES = ("manifest.json", "agent.pyz", "release.json")


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
        raise UsageError(f"{bundle} is not a bundle (no manifest.json); run `make quantize` first")
    try:
        manifest = json.loads(manifest_path.read_text())
        variants = manifest["variants"]
        if not isinstance(variants, dict):
            raise TypeError("variants is not a mapping")
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{manifest_path}: not a valid bundle manifest ({e})") from None
    files = {"manifest.json": manifest_path}
    entries = [(name, v) for name, v in variants.items()]
    if isinstance(manifest.get("eval"), dict):
        entries.append(("eval", manifest["eval"]))
    for label, entry in entries:
        if not isinstance(entry, dict):
            raise UsageError(f"{manifest_path}: {label} is not a mapping")
        _check_name(manifest_path, label, entry.get("file"))
        path = bundle / entry["file"]
        if not path.is_file():
            raise UsageError(f"{bundle}: {label} file {entry.get('file')!r} is missing")
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise UsageError(f"{bundle}: {path.name} does not match the sha256 in manifest.json")
        files[entry["file"]] = path
    return manifest, files


def _check_name(manifest_path: Path, label: str, name: object) -> None:
    """A file name is joined onto the release directory on the board: a plain name only."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"{manifest_path}: {label} has no file name")
    if Path(name).name != name or name.startswith(".") or name in RESERVED_NAMES or "\\" in name:
        raise UsageError(f"{manifest_path}: {label} file {name!r} is not allowed (a plain file name, "
                          f"not hidden, not {', '.join(RESERVED_NAMES)})")


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
    lines = res.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except (IndexError, ValueError) as e:
        raise DeployError(f"{target.name}: release {command} gave no answer on the board "
                          f"({'empty output' if not lines else e})") from None
    return answer


def ship(target: Target, home: str, release: Release, *, log=print) -> dict:
    """Upload missing blobs, verify and switch `current`. Any failure leaves `current` as it was."""
    started = time.monotonic()
    have = set(board_call(target, "inventory", {"home": home, "files": release.hashes}).get("have", []))
    sent = {"files": 0, "bytes": 0}
    uploads: dict[str, str] = {}
    _upload(target, home, release, set(release.hashes.values()) - have, uploads, sent)
    meta = {"bundle": release.bundle_name, "deployed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    request = {"home": home, "id": release.id, "files": release.hashes, "uploads": uploads, "meta": meta}
    answer = board_call(target, "commit", request)
    if answer.get("missing"):
        # another deploy to this board pruned a blob after our inventory: send it, commit once more
        _upload(target, home, release, set(answer["missing"]), uploads, sent)
        answer = board_call(target, "commit", request)
    if "release" not in answer:
        raise DeployError(f"{target.name}: release commit failed on the board: blobs "
                          f"{', '.join(h[:12] for h in answer.get('missing', []))} keep disappearing "
                          "(another deploy running?); the previous release stays active")
    return {"release": release.id, "path": answer["release"], "previous": answer.get("previous"),
            "files_sent": sent["files"], "bytes_sent": sent["bytes"],
            "seconds": round(time.monotonic() - started, 2)}


def _upload(target: Target, home: str, release: Release, digests: set[str], uploads: dict[str, str],
            sent: dict) -> None:
    """Send each wanted hash once, under an upload name of its own (parallel deploys never collide)."""
    for name, path in sorted(release.files.items()):
        digest = release.hashes[name]
        if digest not in digests:
            continue
        digests.discard(digest)       # two names with one content: send once
        uploads[digest] = f"{digest}.{secrets.token_hex(4)}.part"
        try:
            target.put(path, f"{home}/blobs/{uploads[digest]}")
        except DeployError as e:
            raise DeployError(f"{e}{_free_space_hint(target, home)}; the previous release stays active") from None
        sent["bytes"] += path.stat().st_size
        sent["files"] += 1


def _free_space_hint(target: Target, home: str) -> str:
    """SFTP reports a full disk as a bare 'Failure': say how much room is left, if we still can."""
    try:
        res = target.run(f"df -Pk {shlex.quote(home)} | awk 'NR==2 {{print int($4/1024)}}'", timeout=15)
        free = res.stdout.strip()
        return f" ({free} MB free on the board)" if res.ok and free.isdigit() else ""
    except DeployError:
        return ""
