"""The service's model hand-over, driven step by step (no HTTP server, no polling thread): real
releases on disk, the real loader (child-process check, real interpreters), real .tflite files.

A changed link is followed; a release that fails its check is refused, reported and never retried,
while the old model keeps serving; a release without the served variant is refused; rolling the
link back is followed too. The `served` link and the state file deploy reads say the same.
"""
from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

from device.contract.fileio import sha256_file
from device.errors import AgentError
from device.runtimes import registry as runtime
from device.serving import swap
from device.serving.predictor import Predictor


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


# ---- each step on its own: what the check runs, what a refusal says, what the state file holds

def test_the_check_is_one_inference_without_warm_up_with_xnnpack_in_a_child(models):
    rt = runtime.resolve(None)
    run = swap.isolated_check(models["int8"], rt, 2)
    assert (run["threads"], run["xnnpack"], run["count"], run["warmup"]["count"]) == (2, True, 1, 0)
    assert run["delegate_nodes"] > 0                 # XNNPACK really took part, as when served


def test_a_model_failing_in_the_child_is_refused_in_the_childs_words(models, monkeypatch):
    rt = runtime.resolve(None)
    with pytest.raises(AgentError) as e:
        swap.isolated_check(models["invoke_fails"], rt, 1)
    assert e.value.kind == "invoke" and str(e.value).startswith("invoke: invoke failed: gather index out of bounds")
    monkeypatch.setattr(swap, "CHECK_TIMEOUT_SECS", 3.0)     # a model that hangs: the child is stopped
    with pytest.raises(AgentError) as e:
        swap.isolated_check(models["hang"], rt, 1)
    assert (e.value.kind, str(e.value)) == ("timeout", "timeout: timed out after 3 s")


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> str:
    """Loads, runs, and answers NaN for every class (log of a negative number)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
    def f(x):
        return tf.math.log(tf.reduce_mean(x, axis=[1, 2]) * 0.0 - tf.ones([1, 6]))

    path = tmp_path_factory.mktemp("nan") / "nan.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert())
    return str(path)


def test_a_model_answering_nan_fails_the_self_check(nan_model):
    rt = runtime.resolve(None)
    swap.isolated_check(nan_model, rt, 1)            # the child only times it: it passes there
    with pytest.raises(AgentError) as e:
        swap.self_check(Predictor(nan_model, rt))
    assert (e.value.kind, str(e.value)) == ("check", "the check inference gave no finite score")


def test_the_loader_refuses_a_missing_variant_and_keeps_labels_and_manifest(home, models):
    rt = runtime.resolve(None)
    load = swap.release_loader(rt, 1, 1, None)
    with pytest.raises(AgentError) as e:
        load(str(home / "releases" / "r4"), "int8")
    assert (e.value.kind, str(e.value)) == ("manifest", "release has no variant 'int8' (fp16)")
    empty = home / "releases" / "r5"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps(dict(json.loads((home / "releases" / "r1" / "manifest.json")
                                                                    .read_text()), variants={})))
    with pytest.raises(AgentError) as e:
        load(str(empty), "int8")
    assert str(e.value) == "release has no variant 'int8' (none)"
    two = home / "releases" / "r6"
    two.mkdir()
    (two / "manifest.json").write_text(json.dumps(dict(json.loads((home / "releases" / "r1" / "manifest.json")
                                                                  .read_text()), variants={"fp32": {}, "fp16": {}})))
    with pytest.raises(AgentError) as e:
        load(str(two), "int8")
    assert str(e.value) == "release has no variant 'int8' (fp16, fp32)"

    manifest = json.loads((home / "releases" / "r1" / "manifest.json").read_text())
    served = load(str(home / "releases" / "r1"), "int8")
    assert served.predictor.labels == manifest["class_names"]                 # from the release's manifest
    names = [f"class {i}" for i in range(len(manifest["class_names"]))]
    labelled = swap.release_loader(rt, 1, 1, names)(str(home / "releases" / "r1"), "int8")
    assert labelled.predictor.labels == names                                 # the service's --labels win


def _served(home, release: str = "r1") -> swap.Served:
    return swap.release_loader(runtime.resolve(None), 1, 1, None)(str(home / "releases" / release), "int8")


def test_a_failed_load_is_reported_as_its_exception_and_kept_out(home):
    served = _served(home)
    errors = {"r2": ValueError("bad\nweights"), "r3": AgentError("release r3: no model", kind="manifest")}

    def load(release_dir: str, variant):
        raise errors[os.path.basename(release_dir)]

    f = swap.Follower(served, load, link=str(home / "current"), state_path=str(home / "serve.json"))
    _point(home, "r2")
    f.check_once()
    assert f.error["release"] == "r2" and f.error["error"] == "ValueError: bad weights"   # type named, one line
    assert set(f.error) == {"release", "error", "utc"} and f.error["utc"].endswith("Z")
    _point(home, "r3")
    f.check_once()
    assert f.error["error"] == "release r3: no model"                                      # the agent's own words
    assert f.served is served


def test_a_link_naming_nothing_is_not_followed(home):
    f = swap.Follower(_served(home), swap.release_loader(runtime.resolve(None), 1, 1, None),
                      link=str(home / "current"))
    _point(home, "gone")                             # dangling: the release does not exist
    assert f.target() is None
    f.check_once()
    assert f.served.release == "r1" and f.error is None


def test_the_switch_line_says_from_to_model_hash_and_time(home, capsys):
    served = _served(home)
    f = swap.Follower(served, swap.release_loader(runtime.resolve(None), 1, 1, None), link=str(home / "current"))
    _point(home, "r2")
    capsys.readouterr()
    f.check_once()
    line = capsys.readouterr().out.strip()
    m = re.fullmatch(r"switched r1 -> r2 \((.+) sha256 ([0-9a-f]+)\) in (\d+\.\d\d)s", line)
    assert m, line
    assert m.group(1) == f.served.predictor.meta["name"] and m.group(2) == f.served.sha256[:12]
    assert 0 <= float(m.group(3)) < 60


def test_served_link_is_relative_and_survives_a_stale_temp_link_and_a_blocked_name(home, tmp_path, monkeypatch,
                                                                                    capfd):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                     # the link must not depend on the working directory
    os.symlink("releases/nowhere", home / "served.new")     # left by a crash between symlink and rename
    f = swap.Follower(_served(home), swap.release_loader(runtime.resolve(None), 1, 1, None),
                      link=str(home / "current"))
    assert os.readlink(home / "served") == os.path.join("releases", "r1")
    assert not os.path.lexists(home / "served.new") and os.listdir(elsewhere) == []
    os.unlink(home / "served")
    (home / "served").mkdir()                        # something in the way: one line, service goes on
    (home / "served" / "x").write_text("")
    capfd.readouterr()
    f.mark_served()
    err = capfd.readouterr().err
    assert err.startswith(f"edgekit-agent: cannot update {home}/served: ") and err.count("\n") == 1


def test_state_file_holds_pid_time_extras_and_is_private(home):
    f = swap.Follower(_served(home), swap.release_loader(runtime.resolve(None), 1, 1, None),
                      link=str(home / "current"), state_path=str(home / "serve.json"),
                      state_extra={"port": 8080, "token_sha256": "ab"})
    state = _state(home)
    assert state["pid"] == os.getpid() and state["port"] == 8080 and state["token_sha256"] == "ab"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", state["updated_utc"])
    assert (state["release"], state["variant"], state["follow"]) == ("r1", "int8", str(home / "current"))
    assert os.stat(home / "serve.json").st_mode & 0o777 == 0o600
    assert f.facts()["sha256"] == state["sha256"]


def test_a_new_release_is_decoded_as_the_service_was_told(home):
    """serve --threshold/--iou/--task hold for every release the service switches to."""
    load = swap.release_loader(runtime.resolve(None), 1, 1, None, threshold=0.9, iou=0.3, task="raw")
    served = load(str(home / "releases" / "r2"), "int8")
    assert (served.predictor.threshold, served.predictor.iou, served.predictor.task.name) == (0.9, 0.3, "raw")
