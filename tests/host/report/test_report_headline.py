"""The report's headline says what was measured: "slower" when INT8 is slower (never "0.80× faster")."""
from __future__ import annotations

from host.report.build import Row, headline


def rows(p50_fp32: float, p50_int8: float, emulated: bool = False) -> list:
    doc = {"device": {"emulated": emulated}}

    def row(variant, p50, size, top1, threads=1):
        return Row("b", "digits", variant, threads, True, {"p50_us": p50},
                   {"model": {"size_bytes": size}, "accuracy": {"top1": top1}}, doc, None)

    return [row("fp32", p50_fp32, 4000, 0.95), row("int8", p50_int8, 1000, 0.94),
            row("int8", p50_int8 / 10, 1000, 0.94, threads=4)]


def test_faster():
    assert headline(rows(200.0, 100.0), "b", "digits") == (
        "INT8 is 4.0× smaller and 2.00× faster than FP32 on b (1 thread, XNNPACK), accuracy delta -1.00 pp.")


def test_slower_is_said_so():
    text = headline(rows(80.0, 100.0), "b", "digits")
    assert "1.25× slower than FP32" in text and "faster" not in text


def test_equal_and_emulated():
    text = headline(rows(100.0, 100.0, emulated=True), "b", "digits")
    assert "1.00× faster" in text and text.endswith("(EMULATED: latency not representative).")
    assert headline(rows(1.0, 1.0)[:1], "b", "digits") is None
