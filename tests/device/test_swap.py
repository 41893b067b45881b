"""The service's model hand-over, driven step by step (no HTTP server, no polling thread): real
releases on disk, the real loader (child-process check, real interpreters), real .tflite files.

A changed link is followed; a release that fails its check is refused, reported and never retried,
while the old model keeps serving; a release without the served variant is refused; rolling the
link back is followed too. The `served` link and the state file deploy reads say the same.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from device import runtime, swap
from device.fileio import sha256_file


def _release(home, name: str, model_src: str | None, manifest_src: str, garbage: bytes | None = None,
             variant: str = "int8"):
    d = home / "releases" / name
    d.mkdir(parents=True)
    manifest = json.loads(open(manifest_src).read())
    entry = dict(manifest["variants"]["int8"], file="int8.tflite")
    manifest["variants"] = {variant: entry}
    (d / "manifest.json").write_text(json.dumps(manifest))
    if garbage is not None:
        (d / "int8.tflite").write_bytes(garbage)
    else:
        shutil.copyfile(model_src, d / "int8.tflite")
    return d


def _point(home, name: str) -> None:
    """Switch `current` the way deploy does: one rename of a new link over the old one."""
    tmp = home / "current.new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(f"releases/{name}", tmp)
    os.replace(tmp, home / "current")


@pytest.fixture
def home(models, tmp_path):
    bundle = models["bundle"]
    manifest = os.path.join(bundle, "manifest.json")
    h = tmp_path / "edgekit"
    _release(h, "r1", os.path.join(bundle, "int8.tflite"), manifest)
    _release(h, "r2", os.path.join(bundle, "fp32.tflite"), manifest)            # another model, same variant
    _release(h, "r3", None, manifest, garbage=b"\x00" * 64 + b"TFL3" + b"\x00" * 200)   # does not load
    _release(h, "r4", os.path.join(bundle, "int8.tflite"), manifest, variant="fp16")  # no int8 variant
    _point(h, "r1")
    return h


def _state(home) -> dict:
    return json.loads((home / "serve.json").read_text())


def test_follow_switch_refuse_never_retry_and_roll_back(home):
    load = swap.release_loader(runtime.resolve(None), 1, 1, None)
    served = load(str(home / "releases" / "r1"), "int8")
    switches: list = []
    f = swap.Follower(served, load, link=str(home / "current"), state_path=str(home / "serve.json"),
                      on_switch=switches.append)
    assert os.path.realpath(home / "served") == str(home / "releases" / "r1")
    assert _state(home)["release"] == "r1" and _state(home)["switch_error"] is None

    f.check_once()                                   # nothing changed: nothing happens
    assert f.served is served and switches == []

    _point(home, "r2")
    f.check_once()
    assert (f.served.release, f.served.variant) == ("r2", "int8")
    assert f.served.sha256 == sha256_file(home / "releases" / "r2" / "int8.tflite") != served.sha256
    assert switches == [True]
    assert (_state(home)["release"], _state(home)["sha256"]) == ("r2", f.served.sha256)
    assert os.path.realpath(home / "served") == str(home / "releases" / "r2")
    # a request that took the old model before the switch still finishes on it
    spec = served.predictor.in_specs[0]
    old = served.predictor.predict(np.zeros(spec["shape"], dtype=np.dtype(spec["dtype"])), 1)
    assert old["top_k"] and np.isfinite(old["top_k"][0]["score"])

    r2 = f.served
    _point(home, "r3")
    f.check_once()
    assert f.served is r2 and switches == [True, False]
    assert f.error["release"] == "r3" and f.error["error"]
    assert _state(home)["release"] == "r2" and _state(home)["switch_error"]["release"] == "r3"
    assert os.path.realpath(home / "served") == str(home / "releases" / "r2")   # a restart keeps r2
    f.check_once()                                   # a refused release is not tried again
    assert switches == [True, False] and f.served is r2

    _point(home, "r4")
    f.check_once()
    assert f.served is r2 and switches == [True, False, False]
    assert "no variant 'int8'" in f.error["error"]

    _point(home, "r1")                               # rollback: followed like any change
    f.check_once()
    assert f.served.release == "r1" and f.served.sha256 == served.sha256
    assert switches == [True, False, False, True]
    assert f.error is None and _state(home)["switch_error"] is None
    assert os.path.realpath(home / "served") == str(home / "releases" / "r1")


def test_without_a_link_nothing_is_followed(home):
    load = swap.release_loader(runtime.resolve(None), 1, 1, None)
    served = load(str(home / "releases" / "r1"), "int8")
    f = swap.Follower(served, load)
    _point(home, "r2")
    f.check_once()
    assert f.served is served and f.target() is None
    assert not (home / "served").exists() and not (home / "serve.json").exists()
