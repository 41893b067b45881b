"""safe_name: the one file-name cleaning rule shared by results, reports and plots."""
from __future__ import annotations

import pytest

from device.contract.fileio import safe_name


@pytest.mark.parametrize("text, name", [
    ("rpi4_mnist-5k.v2", "rpi4_mnist-5k.v2"),            # already safe: unchanged
    ("root@pi:22", "root_pi_22"),                       # each unsafe character becomes "_"
    ("a / b\\c", "a_b_c"),                               # a run of them becomes one "_"
    ("../../etc/passwd", ".._.._etc_passwd"),            # no "/" survives, so no other directory
    ("$(rm -rf ~);`x`", "_rm_-rf_x_"),
    ("naïve ünïcode", "na_ve_n_code"),
    ("", ""),
])
def test_safe_name(text, name):
    assert safe_name(text) == name


def test_writing_to_a_fifo_or_device_writes_into_it_and_never_replaces_it(tmp_path):
    """`--json /dev/null` must not turn the device into a file: a FIFO stands in for it here."""
    import os
    import stat
    import threading
    from device.contract.fileio import atomic_write_text
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write_text(fifo, '{"ok": true}')
    reader.join(timeout=10)
    assert got == [b'{"ok": true}'] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]         # no temp file left beside it
