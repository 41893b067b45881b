"""The board-side release commit (deploy/releases/on_board.py), called in-process on a real directory:
hash check of every upload and blob, the atomic `current` switch, crash points, pruning.

(The same script run through `python3 -c` on a real target is covered by test_release_safety.py;
these are in-process so `make mutate` can see which test covers which function.)
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from deploy.releases import on_board as br

ID1, ID2, ID3, ID4, ID5 = "aaaaaaaaaaa1", "aaaaaaaaaaa2", "aaaaaaaaaaa3", "aaaaaaaaaaa4", "aaaaaaaaaaa5"


@pytest.fixture(autouse=True)
def _sandbox_cwd(tmp_path, monkeypatch):
    """A broken commit/prune (a mutant) may resolve paths relative to the cwd: keep that in tmp."""
    monkeypatch.chdir(tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(home, data: bytes, tag: str = "1") -> dict:
    """What the host's _upload leaves on the board: blobs/<sha>.<token>.part."""
    (home / "blobs").mkdir(parents=True, exist_ok=True)
    part = f"{sha(data)}.{tag}.part"
    (home / "blobs" / part).write_bytes(data)
    return {sha(data): part}


def request(home, rid: str, files: dict, uploads: dict) -> dict:
    return {"home": str(home), "id": rid, "files": {n: sha(d) for n, d in files.items()}, "uploads": uploads,
            "meta": {"bundle": "b"}}


def deploy(home, rid: str, files: dict, tag: str = "1") -> dict:
    uploads = {}
    for data in files.values():
        if not (home / "blobs" / sha(data)).exists():
            uploads.update(upload(home, data, tag))
    return br.commit(request(home, rid, files, uploads))


def current(home) -> str:
    return os.readlink(home / "current")


def test_first_commit_builds_and_switches(tmp_path):
    home = tmp_path / "h"
    files = {"fp32.tflite": b"model one", "agent.pyz": b"agent"}
    answer = deploy(home, ID1, files)
    assert answer == {"release": str(home / "releases" / ID1), "previous": None}
    assert current(home) == os.path.join("releases", ID1)
    for name, data in files.items():
        assert (home / "current" / name).read_bytes() == data
        assert os.path.samefile(home / "current" / name, home / "blobs" / sha(data)), "hard link to the blob"
    meta = json.loads((home / "current" / "release.json").read_text())
    assert meta == {"bundle": "b", "id": ID1, "files": {n: sha(d) for n, d in files.items()}}
    assert sorted(os.listdir(home / "blobs")) == sorted(sha(d) for d in files.values()), "parts promoted"
    assert not (home / "current.new").exists()
    assert br.current_id(str(home)) == ID1
    assert br.inventory({"home": str(home), "files": {"x": sha(b"model one"), "y": sha(b"other")}}) == \
        {"have": [sha(b"model one")]}


def test_second_commit_reports_previous_and_same_id_is_idempotent(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    assert deploy(home, ID2, {"m.tflite": b"two"}) == {"release": str(home / "releases" / ID2), "previous": ID1}
    assert (home / "current" / "m.tflite").read_bytes() == b"two"
    again = deploy(home, ID2, {"m.tflite": b"two"})
    assert again == {"release": str(home / "releases" / ID2), "previous": ID2}
    assert current(home) == os.path.join("releases", ID2)
    assert (home / "releases" / ID1 / "m.tflite").read_bytes() == b"one", "previous kept for rollback"


def test_corrupted_upload_is_refused_and_current_unchanged(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"good model"})
    good = b"new model"
    part = f"{sha(good)}.x.part"
    (home / "blobs" / part).write_bytes(b"new modeL")       # wrong bytes under the right name
    with pytest.raises(SystemExit) as exc:
        br.commit(request(home, ID2, {"m.tflite": good}, {sha(good): part}))
    assert str(exc.value) == (f"sha256 mismatch for m.tflite (got {sha(b'new modeL')[:12]}, want {sha(good)[:12]}); "
                              "the file was removed, deploy again")
    assert not (home / "blobs" / part).exists() and not (home / "blobs" / sha(good)).exists()
    assert current(home) == os.path.join("releases", ID1)
    assert (home / "current" / "m.tflite").read_bytes() == b"good model"
    assert not (home / "releases" / ID2).exists()


def test_corrupted_existing_blob_is_refused(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    data = b"shared"
    (home / "blobs" / sha(data)).write_bytes(b"rotten")    # a blob whose bytes changed on the board
    with pytest.raises(SystemExit, match="sha256 mismatch for m.tflite"):
        br.commit(request(home, ID2, {"m.tflite": data}, {}))
    assert not (home / "blobs" / sha(data)).exists()
    assert current(home) == os.path.join("releases", ID1)


def test_one_upload_for_two_names(tmp_path):
    home = tmp_path / "h"
    data = b"same bytes"
    up = upload(home, data)
    br.commit(request(home, ID1, {"a.tflite": data, "b.tflite": data}, up))
    assert (home / "current" / "a.tflite").read_bytes() == (home / "current" / "b.tflite").read_bytes() == data


def test_missing_blob_is_reported_not_failed(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    gone = b"pruned meanwhile"
    have = upload(home, b"kept")
    answer = br.commit(request(home, ID2, {"m.tflite": gone, "k.bin": b"kept"}, have))
    assert answer == {"missing": [sha(gone)]}
    assert current(home) == os.path.join("releases", ID1)
    assert (home / "blobs" / have[sha(b"kept")]).exists(), "the other upload waits for the retry"
    assert br.missing_blobs(str(home / "blobs"), {"k": sha(b"kept")}, {sha(b"kept"): "nope.part"}) == [sha(b"kept")]


def test_upload_vanished_between_check_and_verify(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    with pytest.raises(SystemExit, match="^missing upload for m$"):
        br.verify_blobs(str(blobs), {"m": sha(b"x")}, {})


@pytest.mark.parametrize("files,uploads,rid,message", [
    ({"m": "0" * 64}, {}, "ABC", "bad release id 'ABC'"),
    ({"m": "0" * 64}, {}, "0123456789abc", "bad release id"),
    ({"../m": "0" * 64}, {}, ID1, "refusing file name '../m' (a plain name, not hidden, not release.json)"),
    ({".m": "0" * 64}, {}, ID1, "refusing file name"),
    ({"": "0" * 64}, {}, ID1, "refusing file name"),
    ({"release.json": "0" * 64}, {}, ID1, "refusing file name"),
    ({"a\0b": "0" * 64}, {}, ID1, "refusing file name"),
    ({"m": "0" * 63}, {}, ID1, "bad sha256 '" + "0" * 63 + "' for m"),
    ({"m": "G" * 64}, {}, ID1, "bad sha256"),
    ({"m": "0" * 64}, {"0" * 64: "../x.part"}, ID1, "bad upload name '../x.part'"),
    ({"m": "0" * 64}, {"0" * 64: "x.tmp"}, ID1, "bad upload name"),
    ({"m": "0" * 64}, {"0" * 64: ".x.part"}, ID1, "bad upload name"),
])
def test_board_checks_the_request(files, uploads, rid, message):
    with pytest.raises(SystemExit) as exc:
        br.check_request(files, uploads, rid)
    assert str(exc.value).startswith(message)


def test_check_request_accepts_a_good_one():
    br.check_request({"m.tflite": "0" * 64}, {"0" * 64: "a.part"}, ID1)


def test_link_or_copy_falls_back_to_a_copy(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"content")

    def no_links(a, b):
        raise OSError(1, "Operation not permitted")   # a file system without hard links

    monkeypatch.setattr(br.os, "link", no_links)
    br.link_or_copy(str(src), str(dst))
    assert dst.read_bytes() == b"content" and not os.path.samefile(src, dst)
    assert oct(dst.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        br.link_or_copy(str(src), str(dst))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_prune_keeps_current_and_the_most_recently_used(tmp_path):
    home = tmp_path / "h"
    for i, rid in enumerate((ID1, ID2, ID3, ID4)):
        deploy(home, rid, {"m.tflite": f"model {i}".encode()}, tag=str(i))
    assert sorted(os.listdir(home / "releases")) == [ID1, ID2, ID3, ID4], "commit itself removes nothing"
    meta_size = (home / "releases" / ID1 / "release.json").stat().st_size
    out = br.prune({"home": str(home), "keep": 3})
    assert out["removed"] == [ID1] and out["kept"] == [ID2, ID3, ID4]
    assert out["freed_bytes"] == meta_size + len(b"model 0")   # its release.json and its (hard-linked) blob
    assert sorted(os.listdir(home / "releases")) == [ID2, ID3, ID4]
    assert not (home / "blobs" / sha(b"model 0")).exists() and (home / "blobs" / sha(b"model 1")).exists()
    assert current(home) == os.path.join("releases", ID4)


def test_prune_leftovers(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    blobs = home / "blobs"
    fresh, stale = blobs / "f.1.part", blobs / "s.1.part"
    fresh.write_bytes(b"in flight")
    stale.write_bytes(b"abandoned")
    old = time.time() - br.STALE_UPLOAD_S - 60
    os.utime(stale, (old, old))
    (blobs / ("e" * 64)).write_bytes(b"unreferenced")
    dead_tmp, live_tmp = home / "releases" / f"{ID2}.tmp99", home / "releases" / f"{ID3}.tmp98"
    dead_tmp.mkdir()
    live_tmp.mkdir()
    os.utime(dead_tmp, (old, old))
    out = br.prune({"home": str(home), "keep": 1})
    assert fresh.exists() and not stale.exists() and not (blobs / ("e" * 64)).exists()
    assert not dead_tmp.exists() and live_tmp.exists(), "another deploy's release in the making stays"
    assert (blobs / sha(b"one")).exists() and out["removed"] == []
    assert out["freed_bytes"] == len(b"abandoned") + len(b"unreferenced")


CRASH = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from deploy.releases import on_board as br
point = sys.argv[2]
real_replace, real_rename = os.replace, os.rename
def crash(*a):
    os.kill(os.getpid(), 9)
if point == "switch":      # the new release is complete; the process dies before `current` moves
    os.replace = lambda a, b: crash() if b.endswith("/current") else real_replace(a, b)
if point == "build":       # dies while the release directory is being built
    os.rename = lambda a, b: crash()
if point == "promote":     # dies after checking the hashes, while promoting the uploads
    os.replace = lambda a, b: crash() if a.endswith(".part") else real_replace(a, b)
br.commit(json.loads(sys.argv[3]))
"""


@pytest.mark.parametrize("point", ["promote", "build", "switch"])
def test_crash_between_upload_and_switch_leaves_the_previous_release(tmp_path, point):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"old model"})
    new = b"new model"
    req = request(home, ID2, {"m.tflite": new}, upload(home, new, "c"))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    proc = subprocess.run([sys.executable, "-c", CRASH, repo, point, json.dumps(req)], capture_output=True, cwd=repo)
    assert proc.returncode == -9, proc.stderr.decode()
    assert current(home) == os.path.join("releases", ID1)
    assert (home / "current" / "m.tflite").read_bytes() == b"old model"
    assert json.loads((home / "current" / "release.json").read_text())["id"] == ID1
    # the next deploy goes through and cleans up after the dead one
    answer = deploy(home, ID2, {"m.tflite": new}, tag="d")
    assert answer["previous"] == ID1 and (home / "current" / "m.tflite").read_bytes() == new
    assert [r["id"] for r in br.listing({"home": str(home)})["releases"]] == [ID1, ID2], "leftovers never listed"
    assert not (home / "current.new").exists()


def test_stale_current_new_link_is_replaced(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    os.symlink("releases/nowhere", home / "current.new")
    deploy(home, ID2, {"m.tflite": b"two"})
    assert current(home) == os.path.join("releases", ID2) and not os.path.lexists(home / "current.new")


def test_main_prints_one_json_line(tmp_path, capsys, monkeypatch):
    home = tmp_path / "h"
    data = b"via main"
    req = request(home, ID5, {"m": data}, upload(home, data))
    monkeypatch.setattr(sys, "argv", ["board_release", "commit", json.dumps(req)])
    br.main()
    assert json.loads(capsys.readouterr().out) == {"release": str(home / "releases" / ID5), "previous": None}
    monkeypatch.setattr(sys, "argv", ["board_release", "inventory", json.dumps({"home": str(tmp_path / "new"),
                                                                                "files": {"m": sha(data)}})])
    br.main()
    assert json.loads(capsys.readouterr().out) == {"have": []}
    assert (tmp_path / "new" / "blobs").is_dir()


def test_commit_holds_the_board_lock(tmp_path):
    """A second deploy waits for the first: the lock file is flock'ed during commit."""
    import fcntl
    home = tmp_path / "h"
    home.mkdir()
    with open(home / ".deploy.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from deploy.releases import on_board as br; "
                "print(json.dumps(br.commit(json.loads(sys.argv[2]))))")
        data = b"locked"
        req = request(home, ID1, {"m": data}, upload(home, data))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        proc = subprocess.Popen([sys.executable, "-c", code, repo, json.dumps(req)], stdout=subprocess.PIPE, cwd=repo)
        # readiness: /proc/locks lists the child as a blocked waiter ("->") on our lock's inode
        inode = os.fstat(held.fileno()).st_ino
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with open("/proc/locks") as f:
                if any(ln.split()[1] == "->" and ln.split()[5] == str(proc.pid) and
                       ln.split()[6].endswith(f":{inode}") for ln in f if len(ln.split()) > 6):
                    break
            time.sleep(0.01)
        assert proc.poll() is None, "the second commit did not wait for the lock"
        assert not (home / "current").exists()
    out, _ = proc.communicate(timeout=30)
    assert json.loads(out)["previous"] is None and (home / "current").exists()


def test_release_json_and_history_are_exact(tmp_path):
    import re
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    deploy(home, ID2, {"m.tflite": b"two"})
    meta = dict({"bundle": "b"}, id=ID2, files={"m.tflite": sha(b"two")})
    assert (home / "current" / "release.json").read_text() == json.dumps(meta, indent=1, sort_keys=True)
    lines = [json.loads(ln) for ln in (home / "history.jsonl").read_text().splitlines()]
    assert [(x["id"], x["from"]) for x in lines] == [(ID1, None), (ID2, ID1)]
    assert all(set(x) == {"utc", "id", "from"} and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", x["utc"])
               for x in lines)
    assert abs(time.mktime(time.strptime(lines[-1]["utc"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 300


def test_a_complete_release_is_not_rebuilt(tmp_path):
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    before = (home / "releases" / ID1 / "release.json").stat().st_ino
    br.commit(request(home, ID1, {"m.tflite": b"one"}, {}))
    assert (home / "releases" / ID1 / "release.json").stat().st_ino == before


def test_leftovers_of_a_dead_commit_are_replaced(tmp_path):
    """A half-built release dir (no release.json) and our own stale tmp dir do not block the commit."""
    home = tmp_path / "h"
    deploy(home, ID1, {"m.tflite": b"one"})
    half = home / "releases" / ID2
    half.mkdir()
    (half / "junk").write_bytes(b"partial")
    mine = home / "releases" / f"{ID2}.tmp{os.getpid()}"
    mine.mkdir()
    (mine / "junk").write_bytes(b"partial")
    data = b"two"
    req = request(home, ID2, {"m.tflite": data}, upload(home, data))
    del req["uploads"]
    (home / "blobs" / sha(data)).write_bytes(data)       # already on the board: no uploads key at all
    assert br.commit(req)["previous"] == ID1
    assert sorted(os.listdir(half)) == ["m.tflite", "release.json"] and not mine.exists()


def test_missing_blobs_accepts_a_blob_promoted_under_another_name(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / sha(b"x")).write_bytes(b"x")
    assert br.missing_blobs(str(blobs), {"a": sha(b"x")}, {sha(b"x"): "gone.part"}) == []


def test_overwrite_refusals_name_the_file(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(SystemExit) as exc:
        br.link_or_copy(str(src), str(dst))            # the hard-link path
    assert str(exc.value) == f"refusing to overwrite {dst}" and dst.read_bytes() == b"old"
    monkeypatch.setattr(br.os, "link", lambda a, b: (_ for _ in ()).throw(OSError(18, "cross-device")))
    with pytest.raises(SystemExit) as exc:
        br.link_or_copy(str(src), str(dst))            # the copy path
    assert str(exc.value) == f"refusing to overwrite {dst}" and dst.read_bytes() == b"old"
