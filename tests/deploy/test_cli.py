"""The command line itself: usage errors and host lists, before any board is touched."""
import pytest

from tests.deploy.conftest import cli


def test_missing_bundle_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli("push", "--host", "local")
    assert e.value.code == 2


def test_host_lists(client_home, bundle, capsys, tmp_path):
    """Bad input is exit 2 and nothing is attempted; a board that fails is exit 1."""
    assert cli("push", "--bundle", bundle, "--hosts", "a,b,a") == 2
    assert capsys.readouterr().err.strip() == "error: a host is listed twice"
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
