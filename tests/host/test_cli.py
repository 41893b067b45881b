"""`python -m host`'s conventions: exit codes by kind of error (2 usage, 1 failure), one error prefix,
one command table, and one spelling per flag with the older spellings still parsing the same."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from host.__main__ import COMMANDS, build_parser, exit_code_for, _model_options

ROOT = Path(__file__).resolve().parents[2]


def host(*args: str, code: str | None = None, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGEKIT_ARTIFACTS=str(tmp / "artifacts"), TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "host", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("host: error: "), lines[0]
    return lines[0]


def test_a_usage_error_exits_2_with_one_line(tmp_path):
    proc = host("search", "--num_threads", "0", tmp=tmp_path)
    assert proc.returncode == 2
    assert one_error_line(proc) == "host: error: --num_threads must be >= 1"
    proc = host("quantize", "--variants", "fp32,int9", tmp=tmp_path)        # argparse's own check: same line
    assert proc.returncode == 2
    assert "unknown variant int9" in one_error_line(proc) and "usage:" not in proc.stderr


# A float model where full INT8 was asked: check_full_int8's real ConversionError, raised inside a
# command run through the real main() (the command itself is swapped so no conversion is needed).
FLOAT_OPS = """
import sys
from pathlib import Path
import host.__main__ as cli
from host.convert.quantize import check_full_int8

def still_float(args):
    check_full_int8(Path(sys.argv[1]).read_bytes())

cli.COMMANDS["evaluate"] = cli.Command(still_float, cli.COMMANDS["evaluate"].arguments, "evaluate", tensorflow=True)
sys.exit(cli.main(["evaluate", "--name", "x"]))
"""


def test_a_model_failure_exits_1_with_one_line(tmp_path):
    from tests.cached_models import device_models

    proc = host(device_models()["fp32"], code=FLOAT_OPS, tmp=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert one_error_line(proc).startswith("host: error: int8 model still has float ops: ")


def test_the_exit_code_table():
    from device.errors import AgentError
    from host.convert.importers import ModelError
    from host.convert.quantize import ConversionError
    from host.data.builtin import DatasetError
    from host.errors import HostError, Interrupted, UsageError
    from host.pipeline.bundle import BundleError
    from host.search.board import BoardFailure
    from host.search.run import NoWinner
    from host.search.space import SearchError

    assert exit_code_for(ConversionError("int8 model still has float ops: CONV_2D")) == 1
    assert exit_code_for(NoWinner("no candidate meets every budget")) == 1
    assert exit_code_for(HostError("x")) == 1
    assert exit_code_for(BoardFailure("pi4: connection refused")) == 1
    assert exit_code_for(BoardFailure("unknown profile", 2)) == 2
    for usage in (UsageError("x"), SearchError("x"), DatasetError("x"), ModelError("x"), BundleError("x"),
                  AgentError("x"), FileNotFoundError("x"), ValueError("x fails the result schema")):
        assert exit_code_for(usage) == 2, usage
    assert exit_code_for(Interrupted("interrupted")) == 130
    assert exit_code_for(RuntimeError("a bug")) is None            # a bug keeps its traceback
    assert exit_code_for(KeyError("a bug")) is None


def test_the_docstring_lists_every_command():
    import host.__main__ as cli

    listed = [line.split()[0] for line in cli.__doc__.split("Commands:")[1].split("\n\n")[0].splitlines() if line.strip()]
    assert listed == list(COMMANDS)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("base, old, new", [
    (["search"], ["--threads", "3"], ["--num_threads", "3"]),
    (["search"], ["--calibration-samples", "40"], ["--calib_n", "40"]),
    (["quantize", "--model", "m.keras"], ["--calib-n", "40"], ["--calib_n", "40"]),
    (["quantize", "--model", "m.keras"], ["--pixel-scale", "0.5", "--pixel-offset", "-1"],
     ["--pixel_scale", "0.5", "--pixel_offset", "-1"]),
    (["bundle", "--model", "a.tflite"], ["--pixel-scale", "2", "--pixel-offset", "1,2,3"],
     ["--pixel_scale", "2", "--pixel_offset", "1,2,3"]),
])
def test_old_spellings_parse_to_the_same_value(base, old, new):
    a, b = parse(*base, *old), parse(*base, *new)
    assert vars(a) == vars(b)
    assert vars(a) != vars(parse(*base))          # the flag did set something


def test_calib_n_and_the_old_calibration_samples_reach_the_same_options():
    """--calib_n is the number of calibration images on both paths; --calibration-samples (the
    built-in path's old spelling) still gives the same Options for your own model."""
    new = _model_options(parse("quantize", "--model", "m.keras", "--calib_n", "40"), quantize=True)
    old = _model_options(parse("quantize", "--model", "m.keras", "--calibration-samples", "40"), quantize=True)
    older = _model_options(parse("quantize", "--model", "m.keras", "--calib-n", "40"), quantize=True)
    assert new.calib_n == old.calib_n == older.calib_n == 40
    assert parse("quantize").calib_n is None and parse("quantize").calibration_samples == 300


def test_old_spellings_are_not_shown_in_help():
    text = {name: sub.format_help() for name, sub in build_parser()._subparsers._group_actions[0].choices.items()}
    for old in ("--threads", "--calibration-samples"):
        assert old not in text["search"]
    assert "--num_threads" in text["search"] and "--calib_n" in text["search"]
    for old in ("--pixel-scale", "--pixel-offset", "--calib-n", "--calibration-samples"):
        assert old not in text["quantize"]
    assert "--pixel_scale" in text["quantize"] and "--calib_n" in text["quantize"]


def test_make_search_passes_flags_search_accepts(tmp_path):
    """SEARCH_FLAGS (with TARGET_FLAGS' board flags) as make expands them, parsed by `search`."""
    env = dict(os.environ, HOSTS="a,b", PROFILE="rpi4", SSH_KEY="k", TRUST_NEW_HOST="1", THREADS="2",
               TRIALS="5", MAX_P50_US="10", NAME="n", DATASET="digits", VENV=str(tmp_path / "venv"))
    out = subprocess.run(["make", "-n", "--no-print-directory", "search"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60).stdout
    [line] = [l for l in out.splitlines() if " -m host search" in l]
    argv = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], a) for a in shlex.split(line.split(" -m host ", 1)[1])]
    args = parse(*argv)
    assert (args.hosts, args.profile, args.ssh_key, args.trust_new_host) == ("a,b", "rpi4", "k", True)
    assert (args.threads, args.trials, args.max_p50_us, args.name, args.dataset) == (2, 5, 10.0, "n", "digits")
    assert "--num_threads" in argv and "--threads" not in argv
