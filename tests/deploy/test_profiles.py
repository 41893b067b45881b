"""Profiles load, are validated strictly, and are picked from the board's model and arch."""
from pathlib import Path

import pytest

from deploy import profiles
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
    with pytest.raises(DeployError, match="wrong type"):
        profiles.load(write(tmp_path, "name: x\nnum_runs: many\n"))
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
    ("num_runs: 0", "num_runs must be >= 1"), ("warmup_runs: -1", "warmup_runs must be >= 0"),
    ("min_secs: -0.5", "min_secs must be >= 0"), ("cooldown_s: -1", "cooldown_s must be >= 0"),
    ("timeout_s: 0", "timeout_s must be > 0"),
])
def test_settings_the_agent_would_refuse_are_errors_at_load(tmp_path, line, says):
    with pytest.raises(DeployError, match=says):
        profiles.load(write(tmp_path, f"name: x\n{line}\n"))
