"""The command line itself: usage errors and host lists, before any board is touched."""
import argparse

import pytest

from tests.deploy.conftest import cli


def test_missing_bundle_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli("push", "--host", "local")
    assert e.value.code == 2


def test_host_lists(client_home, bundle, capsys, tmp_path):
    """Bad input is exit 2 and nothing is attempted; a board that fails is exit 1."""
    assert cli("push", "--bundle", bundle, "--hosts", "a,b,a") == 2
    assert capsys.readouterr().err.strip() == "deploy: error: a host is listed twice"
    assert cli("push", "--bundle", bundle, "--hosts", f"@{tmp_path}/none.txt") == 2
    assert "fleet file" in capsys.readouterr().err
    assert cli("push", "--bundle", bundle, "--host", "bad host!") == 2
    assert "bad host 'bad host!'" in capsys.readouterr().err


def test_unknown_profile_is_refused_before_the_board_changes(client_home, bundle, agent, capsys):
    assert cli("push", "--bundle", bundle, "--host", "local", "--profile", "rpi9", "--agent", agent) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no profile 'rpi9'" in err[-1] and "Traceback" not in "".join(err)
    # refused before any board is contacted: nothing was installed or shipped
    assert not {"venv", "releases", "blobs", "current"} & {p.name for p in (client_home / ".edgekit").iterdir()}


def test_a_missing_bundle_directory_is_bad_input(client_home, capsys, tmp_path):
    assert cli("bench", "--bundle", str(tmp_path / "nope"), "--host", "local") == 2
    assert "not found" in capsys.readouterr().err


def test_every_error_line_has_the_one_prefix(client_home, bundle, capsys):
    """Usage errors found by argparse and by deploy print the same `deploy: error:` line, exit 2."""
    with pytest.raises(SystemExit) as e:
        cli("push", "--bundle", bundle, "--keep", "0")
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "deploy: error: argument --keep: '0' is not a whole number >= 1"
    with pytest.raises(SystemExit):
        cli("no-such-command")
    assert capsys.readouterr().err.splitlines()[-1].startswith("deploy: error: argument command: invalid choice")
    assert cli("releases", "--hosts", ",") == 2
    assert capsys.readouterr().err.strip() == "deploy: error: no hosts given"


def test_the_command_table_is_the_command_line():
    """Every command in the table is a subcommand, listed in the module docstring, and dispatched
    to its own function; nothing else is a subcommand."""
    import deploy.__main__ as cli_module
    from deploy.commands import COMMANDS

    sub = next(a for a in cli_module.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS) == ["push", "bench", "profile", "serve", "stop", "releases",
                                                   "rollback"]
    for name, command in COMMANDS.items():
        assert f"\n  {name} " in cli_module.__doc__, f"{name} missing from deploy/__main__.py's docstring"
        assert sub.choices[name].description == command.help
    assert len({c.run for c in COMMANDS.values()}) == len(COMMANDS)
