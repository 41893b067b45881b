"""Preflight refusals and the runtime choice, on the real local target where a board is needed."""
import os
import shutil

import pytest

from deploy.boards import preflight, runtime, wheelhouse
from deploy.boards.preflight import Board
from deploy.errors import DeployError
from deploy.targets.local import LocalTarget


def board(arch="aarch64", py=(3, 11, 2), glibc=(2, 36), free=5000, numpy=""):
    return Board(home="/h", arch=arch, python=py, glibc=glibc, free_mb=free, ram_mb=1000, numpy=numpy)


@pytest.mark.parametrize("arch, py, glibc, expected", [
    ("aarch64", (3, 11, 2), (2, 36), "ai-edge-litert"),
    ("x86_64", (3, 13, 0), (2, 39), "ai-edge-litert"),
    ("armv7l", (3, 11, 2), (2, 36), "tflite-runtime"),
    ("aarch64", (3, 9, 2), (2, 36), "tflite-runtime"),
])
def test_runtime_choice(arch, py, glibc, expected):
    assert runtime.choose(board(arch, py, glibc)).name == expected


@pytest.mark.parametrize("arch, py, glibc", [("armv7l", (3, 12, 1), (2, 39)), ("armv7l", (3, 11, 2), (2, 31))])
def test_no_runtime_is_a_clear_error(arch, py, glibc):
    with pytest.raises(DeployError, match="no TFLite runtime"):
        runtime.choose(board(arch, py, glibc))


def test_tflite_runtime_on_python_313_is_refused_up_front_with_one_line():
    """A trixie Pi (Python 3.13): tflite-runtime 2.14 has cp39-cp311 wheels only (checked with
    `pip download --only-binary=:all: --platform manylinux_2_34_aarch64 --python-version 3.13`)."""
    trixie = board(py=(3, 13, 5), glibc=(2, 41), numpy="2.2.4")
    with pytest.raises(DeployError) as err:
        runtime.choose(trixie, "tflite-runtime")
    assert str(err.value) == ("runtime tflite-runtime refused: tflite-runtime 2.14.0 has no wheels for "
                              "Python 3.13 (only 3.9, 3.10, 3.11); use `runtime: ai-edge-litert` "
                              "(or auto) in the profile")
    assert runtime.choose(trixie).name == "ai-edge-litert"      # auto: the one that works
    assert runtime.board_numpy_usable(trixie, runtime.choose(trixie))  # reuses Debian's NumPy 2
    bookworm = board(py=(3, 11, 2), glibc=(2, 36), numpy="1.24.2")
    assert runtime.choose(bookworm, "tflite-runtime").name == "tflite-runtime"


def test_board_numpy_reused_only_when_compatible():
    primary = runtime.choose(board())
    fallback = runtime.choose(board("armv7l"))
    assert runtime.board_numpy_usable(board(numpy="1.24.2"), primary)
    assert runtime.board_numpy_usable(board(numpy="2.1.0"), primary)
    assert not runtime.board_numpy_usable(board(numpy="2.1.0"), fallback)
    assert not runtime.board_numpy_usable(board(numpy="1.19.5"), primary)
    assert not runtime.board_numpy_usable(board(numpy=""), primary)


def test_wheelhouse_platform_tags_follow_glibc():
    tags = wheelhouse.platform_tags("aarch64", (2, 31))
    assert tags[0] == "manylinux_2_31_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_34_aarch64" not in tags and "manylinux2014_aarch64" in tags


@pytest.mark.parametrize("facts, message", [
    (dict(arch="armv6l"), "unsupported arch armv6l"),
    (dict(py=(3, 7, 3)), "Python 3.7 is too old"),
    (dict(free=50), "only 50 MB free"),
    (dict(has_venv=False), "no venv module"),
])
def test_preflight_refuses_what_cannot_work(facts, message):
    b = board(arch=facts.get("arch", "aarch64"), py=facts.get("py", (3, 11, 2)), free=facts.get("free", 5000))
    b.has_venv = facts.get("has_venv", True)
    with pytest.raises(DeployError, match=message):
        preflight.check(LocalTarget(), b, need_runtime=True)


def test_probe_of_this_machine(client_home):
    b = preflight.probe(LocalTarget())
    assert b.home == str(client_home / ".edgekit") and b.arch == os.uname().machine
    assert b.python >= (3, 9) and b.free_mb > 0 and b.ram_mb > 0


def test_no_python3_on_the_board_is_refused(client_home, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("uname", "awk", "df", "tr", "dirname", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DeployError, match="no python3 on the board"):
        preflight.probe(LocalTarget())


@pytest.mark.timeout(120)
def test_offline_armv7l_wheelhouse_reuses_the_board_numpy(tmp_path, monkeypatch):
    """PyPI has no armv7l NumPy wheel: the wheelhouse must hold the runtime and not NumPy."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path))
    b = board("armv7l", numpy="1.24.2")
    rt = runtime.choose(b)
    house = wheelhouse.build(rt.requirements, arch="armv7l", glibc=(2, 36), python=(3, 11), board_numpy=b.numpy)
    wheels = sorted(p.name for p in house.glob("*.whl"))
    assert wheels == ["tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_armv7l.whl"]
    assert "numpy" not in (house / "requirements.txt").read_text()


def test_extras_install_what_has_wheels_and_skip_the_rest_with_one_line(tmp_path):
    """A real pip into a real venv: an extra that exists is installed, one that pip cannot find is
    skipped with one line naming it, and the deploy goes on."""
    import subprocess
    import sys
    from deploy.boards import extras, preflight
    from deploy.targets.local import LocalTarget
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    target = LocalTarget()
    board = preflight.probe(target)
    pillow = next(e for e in extras.extras() if e.name == "pillow")
    missing = extras.Extra("edgekit-no-such-package==0.0.1", "nothing")
    lines = []
    done, sent = extras.install(target, board, str(venv), offline=False, log=lines.append, wanted=[missing, pillow])
    assert sent == 0                                        # pip fetched it on the board
    assert done["pillow"] == pillow.pin.split("==")[1]
    assert done["edgekit-no-such-package"].startswith("skipped:")
    assert len(lines) == 1 and "edgekit-no-such-package==0.0.1 not installed (nothing will not work there)" in lines[0]
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import PIL; print(PIL.__version__)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == pillow.pin.split("==")[1]


@pytest.mark.timeout(300)
def test_offline_extras_come_from_a_shipped_wheelhouse(client_home, tmp_path, monkeypatch):
    """The path of a board without the index: the host builds the extra's wheelhouse for the
    board, ships it under the board's home, and pip installs from it with --no-index."""
    import subprocess
    import sys
    from deploy.boards import extras
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = LocalTarget()
    b = preflight.probe(target)
    pillow = next(e for e in extras.extras() if e.name == "pillow")
    lines = []
    done, sent = extras.install(target, b, str(venv), offline=True, log=lines.append, wanted=[pillow])
    assert done == {"pillow": pillow.pin.split("==")[1]} and lines == []
    [house] = (client_home / ".edgekit" / "wheelhouse").iterdir()
    names = sorted(p.name for p in house.iterdir())
    assert len(names) == 2 and names[0].startswith("pillow-13.0.0-") and names[1] == "requirements.txt"
    assert sent == sum(p.stat().st_size for p in house.iterdir())   # counted in the deploy's bytes_sent
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import PIL; print(PIL.__version__)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == pillow.pin.split("==")[1]


def test_the_extras_file_is_pinned_and_says_what_needs_each_one():
    from deploy.boards import extras
    assert extras.extras(), "device/requirements-extras.txt lists no extras"
    for e in extras.extras():
        assert "==" in e.pin and e.why, e


def test_the_board_decodes_images_with_the_hosts_pillow():
    """Resizing differs between Pillow releases; host and board must read pixels alike."""
    from deploy import settings
    from deploy.boards import extras
    host = [l.strip() for l in (settings.DEVICE_DIR.parent / "requirements.txt").read_text().splitlines()
            if l.lower().startswith("pillow==")]
    board = [e.pin for e in extras.extras() if e.name == "pillow"]
    assert host == board


# ---------------------------------------------------------------- ONNX Runtime beside LiteRT (RUNTIMES=)

def test_runtimes_names_are_checked_before_any_board():
    from deploy.errors import UsageError
    assert runtime.parse_runtimes("litert,onnxruntime") == ("litert", "onnxruntime")
    assert runtime.parse_runtimes(None) == ()
    with pytest.raises(UsageError, match=r"unknown runtime 'torch' in RUNTIMES= \(choose from litert, onnxruntime\)"):
        runtime.parse_runtimes("litert,torch")


def test_onnxruntime_is_an_added_runtime_only_where_its_wheels_are():
    [ort] = runtime.added_for(("litert", "onnxruntime"), board(py=(3, 13, 5), glibc=(2, 41)))
    assert ort.pin == "onnxruntime==1.32.0" and ort.module == "onnxruntime"
    assert runtime.added_for(("litert",), board()) == []
    with pytest.raises(DeployError) as err:
        runtime.added_for(("onnxruntime",), board(py=(3, 9, 2)))
    assert str(err.value) == ("runtime onnxruntime refused: onnxruntime 1.32.0 has no wheels for Python 3.9 "
                              "(only 3.11, 3.12, 3.13, 3.14); deploy without onnxruntime in RUNTIMES=")
    with pytest.raises(DeployError, match="has no wheels for armv7l"):
        runtime.added_for(("onnxruntime",), board("armv7l"))


def test_asking_for_onnxruntime_reinstalls_once_and_names_both_pins():
    b = board()
    rt = runtime.choose(b)
    added = tuple(runtime.added_for(("onnxruntime",), b))
    b.installed_runtime = runtime.marker(rt, b, False)
    assert not runtime.needs_install(b, rt) and runtime.needs_install(b, rt, added)
    b.installed_runtime = runtime.marker(rt, b, False, added)
    assert not runtime.needs_install(b, rt, added)
    assert b.installed_runtime.startswith("ai-edge-litert==2.3.0 + onnxruntime==1.32.0 py3.11")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("python", [(3, 11), (3, 13)])
def test_offline_aarch64_wheelhouse_holds_onnxruntime(python):
    """The offline boards' path: the host downloads ORT's aarch64 wheel and its dependencies."""
    b = board(py=python + (0,), numpy="2.2.4" if python >= (3, 13) else "")   # trixie's own NumPy on 3.13
    rt, [ort] = runtime.choose(b), runtime.added_for(("onnxruntime",), b)
    system = runtime.board_numpy_usable(b, rt)
    reqs = [r for r in rt.requirements + ort.requirements if not (system and r.startswith("numpy"))]
    house = wheelhouse.build(reqs, arch="aarch64", glibc=(2, 36), python=python,
                             board_numpy=b.numpy if system else None)
    names = sorted(p.name for p in house.glob("*.whl"))
    tag = f"cp{python[0]}{python[1]}"
    assert f"onnxruntime-1.32.0-{tag}-{tag}-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl" in names or \
        any(n.startswith(f"onnxruntime-1.32.0-{tag}-{tag}-manylinux_2_28_aarch64") for n in names)
    assert any(n.startswith("protobuf-") for n in names) and any(n.startswith("ai_edge_litert-") for n in names)


# ---------------------------------------------------------------- opt-in extras (EXTRAS=): OpenCV

def test_opencv_is_an_opt_in_extra_pinned_as_on_the_host():
    """OpenCV serves the video sources and --record; too big for every board, so only with EXTRAS=."""
    from deploy import settings
    from deploy.boards import extras
    [cv] = [e for e in extras.extras() if e.name == "opencv-python-headless"]
    assert cv.opt_in and "video:" in cv.why and "camera:" in cv.why and "--record" in cv.why
    host = [l.strip() for l in (settings.DEVICE_DIR.parent / "requirements.txt").read_text().splitlines()
            if l.startswith("opencv-python-headless==")]
    assert host == [cv.pin]
    assert cv not in extras.chosen() and [e.name for e in extras.chosen()] == ["pillow"]
    assert cv in extras.chosen(extras.parse_extras("opencv-python-headless"))
    assert cv in extras.chosen(extras.parse_extras("OpenCV_Python_Headless"))    # pip's name rules


def test_unknown_extras_are_refused_before_any_board():
    from deploy.boards import extras
    from deploy.errors import UsageError
    assert extras.parse_extras(None) == ()
    with pytest.raises(UsageError, match=r"unknown extra 'opencv' in EXTRAS= \(choose from opencv-python-headless\)"):
        extras.parse_extras("opencv")
    with pytest.raises(UsageError, match="unknown extra 'pillow'"):     # not opt-in: always installed
        extras.parse_extras("pillow")


def test_asking_for_opencv_reinstalls_once_and_the_default_marker_is_unchanged():
    from deploy.boards import extras
    b = board()
    rt = runtime.choose(b)
    with_cv = extras.chosen(("opencv-python-headless",))
    b.installed_runtime = runtime.marker(rt, b, False)
    assert not runtime.needs_install(b, rt, (), extras.chosen())
    assert runtime.needs_install(b, rt, (), with_cv)
    b.installed_runtime = runtime.marker(rt, b, False, (), with_cv)
    assert not runtime.needs_install(b, rt, (), with_cv) and runtime.needs_install(b, rt)


def test_the_agent_names_the_extra_to_install_when_opencv_is_missing():
    from deploy.boards import extras
    from device.sources.live.opencv import INSTALL
    [cv] = [e for e in extras.extras() if e.opt_in]
    assert f"EXTRAS={cv.name}" in INSTALL and f"pip install {cv.name}" in INSTALL


@pytest.mark.timeout(300)
def test_a_board_without_opencv_wheels_deploys_with_one_line(tmp_path, monkeypatch):
    """PyPI has no armv7l OpenCV wheel: the offline extras step says so in one line and goes on."""
    from deploy.boards import extras
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    old = Board(home=str(tmp_path / "h"), arch="armv7l", python=(3, 9, 2), glibc=(2, 31), free_mb=5000,
                ram_mb=1000, numpy="1.19.5")
    lines = []
    done, sent = extras.install(LocalTarget(), old, str(tmp_path / "h" / "venv"), offline=True, log=lines.append,
                                wanted=extras.chosen(("opencv-python-headless",))[1:])
    assert sent == 0
    assert list(done) == ["opencv-python-headless"] and done["opencv-python-headless"].startswith("skipped:")
    assert len(lines) == 1 and lines[0].startswith(
        "local: opencv-python-headless==4.11.0.86 not installed (video:, camera:, rtsp:// and http:// streams, "
        "--record will not work there): cannot build a wheelhouse for armv7l/Python 3.9")
    assert not (tmp_path / "h").exists()                    # nothing reached the board


@pytest.mark.timeout(300)
def test_the_opencv_wheelhouse_for_aarch64_is_one_wheel_beside_the_venvs_numpy():
    """What EXTRAS=opencv-python-headless ships to an offline aarch64 board: the abi3 wheel alone,
    resolved against the NumPy the runtime put in the venv."""
    from deploy.boards import extras
    [cv] = [e for e in extras.extras() if e.opt_in]
    house = wheelhouse.build([cv.pin], arch="aarch64", glibc=(2, 36), python=(3, 11), board_numpy="1.26.4")
    [wheel] = house.glob("*.whl")
    assert wheel.name == "opencv_python_headless-4.11.0.86-cp37-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    assert 20e6 < wheel.stat().st_size < 40e6
