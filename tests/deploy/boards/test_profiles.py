"""Profiles load, are validated strictly, and are picked from the board's model and arch."""
from pathlib import Path

import pytest

from deploy.boards import profiles
from deploy.errors import DeployError

NAMES = ["rpi3", "rpi4", "rpi5", "rpi-zero-2w", "generic-aarch64", "armv7l", "local"]


def test_every_shipped_profile_loads():
    loaded = {p.name: p for p in profiles.all_profiles()}
    assert sorted(loaded) == sorted(NAMES)
    for p in loaded.values():
        assert p.threads and all(t >= 1 for t in p.threads)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def test_a_typo_in_a_key_is_an_error(tmp_path):
    with pytest.raises(DeployError, match="unknown key.*num_run\\b"):
        profiles.load(write(tmp_path, "name: x\nnum_run: 5\n"))


def test_wrong_types_and_unknown_budgets_are_errors(tmp_path):
    with pytest.raises(DeployError, match="threads"):
        profiles.load(write(tmp_path, "name: x\nthreads: [0]\n"))
    with pytest.raises(DeployError, match="num_runs: expected an integer, got 'many'"):
        profiles.load(write(tmp_path, "name: x\nnum_runs: many\n"))
    with pytest.raises(DeployError, match="wrong type"):
        profiles.load(write(tmp_path, "name: x\narch: aarch64\n"))
    with pytest.raises(DeployError, match="unknown budget max_p50"):
        profiles.load(write(tmp_path, "name: x\nbudgets: {max_p50: 3}\n"))
    with pytest.raises(DeployError, match="not valid YAML"):
        profiles.load(write(tmp_path, "name: [x\n"))
    with pytest.raises(DeployError, match="no profile 'rpi9'"):
        profiles.load("rpi9")


@pytest.mark.parametrize("model, arch, expected", [
    ("Raspberry Pi 4 Model B Rev 1.4", "aarch64", "rpi4"),
    ("Raspberry Pi 5 Model B Rev 1.0", "aarch64", "rpi5"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "armv7l", "rpi3"),
    ("Raspberry Pi Zero 2 W Rev 1.0", "aarch64", "rpi-zero-2w"),
    ("", "aarch64", "generic-aarch64"),
    ("Some Rockchip board", "armv7l", "armv7l"),
    ("", "x86_64", "local"),
])
def test_pick_from_board_model_then_arch(model, arch, expected):
    assert profiles.pick(model, arch, is_local=False).name == expected


@pytest.mark.parametrize("line, says", [
    ("num_runs: 0", "num_runs: expected an integer >= 1"), ("warmup_runs: -1", "warmup_runs: expected an integer >= 0"),
    ("min_secs: -0.5", "min_secs: expected a number >= 0"), ("cooldown: -1", "cooldown: expected a number >= 0"),
    ("timeout: 0", "timeout: expected a number > 0"), ("num_runs: 2.5", "num_runs: expected an integer"),
    ("xnnpack: maybe", "xnnpack: expected one of on, off, both"),
    ("timeout_s: 0", "timeout_s: expected a number > 0"),      # the older key names still load
])
def test_settings_the_agent_would_refuse_are_errors_at_load(tmp_path, line, says):
    with pytest.raises(DeployError, match=says):
        profiles.load(write(tmp_path, f"name: x\n{line}\n"))


def test_unset_settings_take_the_agents_defaults_and_round_trip_through_its_flags(tmp_path):
    """One table: what a profile leaves out is the agent's own default, and the command deploy
    builds, parsed by the agent's own parser, gives back exactly the profile's values."""
    from device.args import build_parser
    from device.contract import params

    bare = profiles.load(write(tmp_path, "name: x\n"))
    agent_defaults = vars(build_parser().parse_args(["bench", "m.tflite"]))
    assert bare.bench == params.defaults()
    assert {k: agent_defaults[k] for k in bare.bench} == bare.bench
    prof = profiles.load(write(tmp_path, "name: y\nthreads: [1, 4]\nnum_runs: 7\nmin_secs: 0.25\n"
                                         "xnnpack: false\ntimeout_s: 12\ncooldown: 3\n"))
    assert prof.bench["num_threads"] == [1, 4] and prof.bench["xnnpack"] == "off"
    parsed = vars(build_parser().parse_args(["bench", "m.tflite"] + params.to_argv(prof.bench)))
    assert {k: parsed[k] for k in prof.bench} == prof.bench
