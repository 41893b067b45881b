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


# exit_process skips the interpreter's teardown only when nothing asked to run at exit.
_EXIT = "import sys; sys.path.insert(0, {root!r}); from device.errors import exit_process\n"


def _exit_run(body: str, tmp_path) -> "subprocess.CompletedProcess":
    import subprocess
    import sys
    from pathlib import Path
    root = str(Path(__file__).resolve().parents[2])
    return subprocess.run([sys.executable, "-c", _EXIT.format(root=root) + body], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


def test_exit_process_flushes_what_was_written_and_keeps_the_code(tmp_path):
    proc = _exit_run("print('answer', end=''); sys.stderr.write('note'); exit_process(3)", tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "answer", "note")


def test_exit_process_still_runs_what_asked_to_run_at_exit(tmp_path):
    proc = _exit_run("import atexit; atexit.register(lambda: print('at exit')); exit_process(0)", tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "at exit\n")


def test_exit_process_waits_for_a_working_thread(tmp_path):
    body = ("import threading, time\n"
            "def work():\n    time.sleep(0.3); open('done', 'w').write('yes')\n"
            "threading.Thread(target=work).start(); exit_process(0)")
    proc = _exit_run(body, tmp_path)
    assert proc.returncode == 0 and (tmp_path / "done").read_text() == "yes"
