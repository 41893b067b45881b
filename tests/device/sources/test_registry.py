"""The frame-source registry: each source yields its items in order; the command line picks one."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from device.errors import EXIT_USAGE, AgentError
from device.sources import registry
from device.sources.base import Options

pytestmark = pytest.mark.timeout(60)


def test_the_sources_known_today():
    assert list(registry.SOURCES) == ["files", "stdin", "watch", "images", "video", "camera", "network",
                                      "picamera2"]
    assert [s.live for s in registry.SOURCES.values()] == [False, False, True] + [False] * 5
    assert [s.name for s in registry.SOURCES.values() if s.frames] == ["images", "video", "camera", "network",
                                                                      "picamera2"]
    assert [s.name for s in registry.SOURCES.values() if s.paced] == ["camera", "network", "picamera2"]


def test_an_unknown_source_is_refused_in_one_line():
    with pytest.raises(AgentError) as err:
        registry.open_source("webcam", ["/dev/video0"])
    assert str(err.value) == ("unknown source 'webcam' (choose from files, stdin, watch, images, video, camera, "
                              "network, picamera2)")
    assert err.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("inputs,watch,chosen", [
    (["a.png", "b"], None, ("files", ["a.png", "b"])),
    (["-"], None, ("stdin", ["-"])),
    ([], "d", ("watch", ["d"])),
])
def test_the_command_line_picks_the_source(inputs, watch, chosen):
    assert registry.choose(inputs, watch) == chosen


@pytest.mark.parametrize("inputs,watch,message", [
    ([], None, "infer needs INPUT..., or - alone, or --watch DIR"),
    (["a.png", "-"], None, "infer needs INPUT..., or - alone, or --watch DIR"),
    (["a.png"], "d", "--watch DIR takes no INPUT arguments"),
])
def test_a_command_line_without_one_source_is_a_usage_error(inputs, watch, message):
    with pytest.raises(AgentError, match=message.replace(".", r"\.")) as err:
        registry.choose(inputs, watch)
    assert err.value.exit_code == EXIT_USAGE


def test_files_expand_folders_sorted_and_keep_the_command_line_order(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    for name in ("b.npy", "a.png", "notes.txt", "c.JPG"):
        (folder / name).write_bytes(b"")
    items = list(registry.open_source("files", ["z.npy", str(folder), "missing.png"]))
    assert [i.name for i in items] == ["z.npy", str(folder / "a.png"), str(folder / "b.npy"),
                                       str(folder / "c.JPG"), "missing.png"]
    assert all(i.path == i.name and i.array is None for i in items)


def test_stdin_paths_one_per_line_blank_lines_skipped():
    stream = io.BufferedReader(io.BytesIO(b"/x/1.png\n\n  /x/2.npy  \n/x/3.jpg"))
    items = list(registry.open_source("stdin", ["-"], Options(stdin=stream)))
    assert [(i.name, i.path) for i in items] == [("/x/1.png", "/x/1.png"), ("/x/2.npy", "/x/2.npy"),
                                                 ("/x/3.jpg", "/x/3.jpg")]


def test_stdin_arrays_in_order_then_an_unreadable_one_stops_the_stream():
    buf = io.BytesIO()
    arrays = [np.full((2, 3), i, dtype=np.uint8) for i in range(3)] + [np.arange(6, dtype=np.float32).reshape(2, 3).T]
    for a in arrays:
        np.save(buf, a)
    stream = io.BufferedReader(io.BytesIO(buf.getvalue() + b"\x93NUMPYgarbage"))
    items = list(registry.open_source("stdin", ["-"], Options(stdin=stream)))
    assert [i.name for i in items] == ["stdin[0]", "stdin[1]", "stdin[2]", "stdin[3]", "stdin[4]"]
    for item, want in zip(items, arrays):
        assert item.error is None and item.array.dtype == want.dtype and np.array_equal(item.array, want)
    assert items[-1].error == "stdin[4]: not a readable .npy array" and items[-1].array is None


def test_watch_yields_new_files_once_complete_in_name_order_and_skips_old_ones(tmp_path):
    (tmp_path / "old.npy").write_bytes(b"x")
    stop = threading.Event()
    items = registry.open_source("watch", [str(tmp_path)], Options(stop=stop, interval=0.01))
    for name in ("b.npy", "a.png", ".hidden.npy", "skip.txt"):
        (tmp_path / name).write_bytes(b"x")
    got = [next(items).name, next(items).name]
    assert got == [str(tmp_path / "a.png"), str(tmp_path / "b.npy")]
    stop.set()
    assert list(items) == []


def test_watch_refuses_a_missing_folder_before_running(tmp_path):
    with pytest.raises(AgentError, match="not a directory"):
        registry.open_source("watch", [str(tmp_path / "nope")], Options(stop=threading.Event()))
