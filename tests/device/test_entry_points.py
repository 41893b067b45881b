"""Every device entry point besides the agent says `prog: error: message` on one line, with exit 2
for a wrong command line or bad input and 1 for a failure."""
from __future__ import annotations

import pytest

from device import build
from device.measure import perf_check
from device.profiling import pieces
from device.serving import load

pytestmark = pytest.mark.timeout(120)


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    return err


@pytest.mark.parametrize("main,argv,prog,words", [
    (build.main, [], "device.build", "usage: python -m device.build OUT.pyz"),
    (build.main, ["-x"], "device.build", "usage: python -m device.build OUT.pyz"),
    (pieces.main, ["only_one"], "device.profiling.pieces", "usage: python -m device.profiling.pieces MODEL OUT_DIR"),
    (perf_check.main, ["--rounds", "x"], "device.measure.perf_check", "argument --rounds: invalid int value"),
    (load.main, ["--clients"], "device.serving.load", "argument --clients: expected one argument"),
])
def test_a_wrong_command_line_exits_2(capsys, main, argv, prog, words):
    assert main(argv) == 2
    assert words in _one_error_line(capsys, prog)


def test_build_cannot_write_exits_1(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert build.main([str(blocker / "agent.pyz")]) == 1
    assert "cannot write" in _one_error_line(capsys, "device.build")


def test_pieces_of_a_missing_model_exits_1(capsys, tmp_path):
    assert pieces.main([str(tmp_path / "nope.tflite"), str(tmp_path / "out")]) == 1
    assert "nope.tflite: no such file" in _one_error_line(capsys, "device.profiling.pieces")


def test_perf_check_when_the_agent_fails_exits_1(capsys, tmp_path):
    assert perf_check.main([str(tmp_path / "nope.tflite"), "--rounds", "1", "--runs", "1"]) == 1
    assert "agent failed: " in _one_error_line(capsys, "device.measure.perf_check")


def test_load_when_the_server_does_not_start_exits_1(capsys, tmp_path):
    assert load.main([str(tmp_path / "nope.tflite"), "--secs", "1"]) == 1
    assert "the server did not start" in _one_error_line(capsys, "device.serving.load")
