"""Results from parallel boards never clobber each other; two hosts never share a results dir."""
import json
import threading

import pytest

from deploy.measure import store
from tests.deploy.conftest import cli

pytestmark = pytest.mark.timeout(60)


def test_parallel_saves_in_one_process_each_keep_their_document(client_home):
    docs = [{"board": i, "pad": "x" * 200_000} for i in range(24)]
    start = threading.Barrier(len(docs))
    paths = []

    def save(doc):
        start.wait()
        paths.append(store.save(doc, "pi", "tiny"))

    threads = [threading.Thread(target=save, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == len(docs)
    assert sorted(json.loads(p.read_text())["board"] for p in paths) == list(range(len(docs)))
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]   # no temp files left


@pytest.mark.parametrize("hosts", ["pi,admin@pi", "pi:22,root@pi:22"])
def test_two_hosts_with_one_results_name_are_refused(client_home, tmp_path, capsys, hosts):
    assert cli("bench", "--bundle", tmp_path, "--hosts", hosts) == 2
    assert "would share results/pi" in capsys.readouterr().err


@pytest.mark.parametrize("host, name", [("root@pi:22", "root_pi_22"), ("../..", "unnamed"), (".hidden", "hidden")])
def test_results_names_are_safe_and_never_hidden(host, name):
    assert store._safe(host) == name


def test_long_results_names_are_cut_and_stay_distinct():
    a, b = store._safe("x" * 100 + "a"), store._safe("x" * 100 + "b")
    assert a != b and a.startswith("x" * 80 + "-") and len(a) == 89
