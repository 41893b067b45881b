"""Release safety on the board side, with the real board script on the real local target:
names from a manifest never leave the release directory, nothing existing is overwritten, and a
blob pruned by a parallel deploy after our inventory is sent again instead of failing the deploy."""
import hashlib
import json
import shutil

import pytest

from deploy.releases import ship as releases
from deploy.errors import DeployError
from deploy.releases.ship import board_call, bundle_files, prepare, ship
from deploy.targets.local import LocalTarget

pytestmark = pytest.mark.timeout(120)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small_bundle(path, files: dict[str, bytes], names: dict[str, str] | None = None):
    """A bundle's shape (manifest + variant files); shipping never opens the models."""
    path.mkdir(parents=True)
    variants = {}
    for variant, data in files.items():
        name = (names or {}).get(variant, f"{variant}.tflite")
        if name and "/" not in name:
            (path / name).write_bytes(data)
        variants[variant] = {"file": name, "sha256": sha(data)}
    (path / "manifest.json").write_text(json.dumps({"name": "small", "variants": variants}))
    return path


@pytest.mark.parametrize("name", ["../../../.profile", ".profile", "sub/x.tflite", "release.json",
                                  "agent.pyz", "manifest.json", ""])
def test_host_refuses_file_names_that_are_not_plain(tmp_path, name):
    bundle = small_bundle(tmp_path / "b", {"fp32": b"model"}, {"fp32": name})
    with pytest.raises(DeployError, match="not allowed|no file name") as e:
        bundle_files(bundle)
    assert "\n" not in str(e.value)


def board_with_blob(tmp_path, data: bytes):
    home = tmp_path / "board"
    (home / "blobs").mkdir(parents=True)
    (home / "blobs" / sha(data)).write_bytes(data)
    return home


@pytest.mark.parametrize("name", ["../../../victim", "release.json", ".profile"])
def test_board_refuses_names_that_escape_or_clobber(tmp_path, name):
    data = b"payload from the host"
    home = board_with_blob(tmp_path, data)
    victim = tmp_path / "victim"
    victim.write_text("the user's own file")
    request = {"home": str(home), "id": "0123456789ab", "files": {name: sha(data)}, "uploads": {},
               "meta": {"bundle": "x"}}
    with pytest.raises(DeployError, match="refusing file name"):
        board_call(LocalTarget(), "commit", request)
    assert victim.read_text() == "the user's own file"
    assert (home / "blobs" / sha(data)).read_bytes() == data     # a hard-linked blob stays intact
    assert not (home / "current").exists()


def test_copy_fallback_never_overwrites(tmp_path):
    """os.link fails on an existing name; the copy fallback must not then replace the file."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("on_board", releases.__file__.replace(
        "ship.py", "on_board.py"))
    board = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(board)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_text("new")
    dst.write_text("old")
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        board.link_or_copy(str(src), str(dst))
    assert dst.read_text() == "old"


class PrunedAfterInventory(LocalTarget):
    """The local board, where another deploy's prune removes every blob right after our inventory."""

    def __init__(self, home):
        self.home, self.calls = home, 0

    def run(self, command, **kwargs):
        res = super().run(command, **kwargs)
        self.calls += 1
        if self.calls == 1:
            for blob in (self.home / "blobs").iterdir():
                blob.unlink()
        return res


def test_blob_pruned_after_inventory_is_sent_again(tmp_path):
    home = tmp_path / "board"
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(b"agent one")
    first = prepare(small_bundle(tmp_path / "b1", {"fp32": b"weights" * 100}), agent)
    assert ship(LocalTarget(), str(home), first, log=lambda *_: None)["files_sent"] == 3
    agent.write_bytes(b"agent two")       # a new release that shares the bundle's blobs
    second = prepare(tmp_path / "b1", agent)
    shipped = ship(PrunedAfterInventory(home), str(home), second)
    assert shipped["previous"] == first.id
    current = home / "current"
    assert (current / "fp32.tflite").read_bytes() == b"weights" * 100
    assert json.loads((current / "release.json").read_text())["id"] == second.id
    shutil.rmtree(home)


class CorruptingTarget(LocalTarget):
    """The local board, where every upload arrives with one byte changed (a bad link or disk)."""

    def put(self, local, remote):
        super().put(local, remote)
        with open(remote, "r+b") as f:
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))


def test_corrupted_upload_is_refused_and_the_release_stays(tmp_path):
    home = tmp_path / "board"
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(b"agent one")
    first = prepare(small_bundle(tmp_path / "b1", {"fp32": b"weights one" * 50}), agent)
    ship(LocalTarget(), str(home), first, log=lambda *_: None)
    second = prepare(small_bundle(tmp_path / "b2", {"fp32": b"weights two" * 50}), agent)
    with pytest.raises(DeployError, match="sha256 mismatch for fp32.tflite .*the file was removed, deploy again"):
        ship(CorruptingTarget(), str(home), second)
    current = home / "current"
    assert json.loads((current / "release.json").read_text())["id"] == first.id
    assert (current / "fp32.tflite").read_bytes() == b"weights one" * 50
    assert not list((home / "blobs").glob(sha(b"weights two" * 50) + "*")), "the bad upload is removed, not promoted"
    assert ship(LocalTarget(), str(home), second)["previous"] == first.id   # a clean retry goes through
