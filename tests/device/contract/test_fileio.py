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
