"""`make perf` names the operators that keep a model's INT8/FP32 ratio above the target: per type,
INT8 time over FP32 time from the two profiles, and the ratio of everything else."""
from __future__ import annotations

import pytest

from host.perf.int8_speed import per_op_type


def rows(**us: float) -> dict:
    return {op: {"op": op, "count": 2, "latency_us": t} for op, t in us.items()}


def test_types_slower_than_the_target_are_named_and_the_rest_is_shown_without_them():
    fp32 = rows(CONV_2D=1000.0, DEPTHWISE_CONV_2D=300.0, ADD=50.0)
    int8 = rows(CONV_2D=250.0, DEPTHWISE_CONV_2D=297.0, ADD=10.0, QUANTIZE=3.0)
    out = per_op_type(fp32, int8, target=0.33)
    by = {r["op"]: r for r in out["by_type"]}
    assert by["DEPTHWISE_CONV_2D"]["int8_over_fp32"] == pytest.approx(0.99)
    assert by["CONV_2D"]["int8_over_fp32"] == pytest.approx(0.25)
    assert by["QUANTIZE"]["int8_over_fp32"] is None and by["QUANTIZE"]["fp32_us"] is None
    assert [r["op"] for r in out["by_type"]] == ["DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "QUANTIZE"]
    assert out["limiting"] == ["DEPTHWISE_CONV_2D", "QUANTIZE"]      # an INT8-only op is pure INT8 cost
    assert out["limiting_share_of_int8"] == pytest.approx(300 / 560, abs=0.002)
    assert out["rest_int8_over_fp32"] == pytest.approx(260 / 1050, abs=0.001)
    assert sum(r["share_of_int8"] for r in out["by_type"]) == pytest.approx(1.0, abs=0.01)


def test_nothing_is_limiting_when_every_type_meets_the_target():
    out = per_op_type(rows(CONV_2D=1000.0), rows(CONV_2D=300.0), target=0.33)
    assert out["limiting"] == [] and out["limiting_share_of_int8"] == 0
    assert out["rest_int8_over_fp32"] == pytest.approx(0.3)
