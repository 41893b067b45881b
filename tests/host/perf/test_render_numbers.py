"""`make perf`'s printout numbers its sections in the order shown (three sections once all printed
"12."): headings are numbered once, in one place, whatever number a stored render carried."""
from __future__ import annotations

from host.perf.run import numbered


def test_headings_are_numbered_in_order_and_details_are_left_alone():
    lines = ["latency", "  p50 1.0", "6. deploy (a stored render's own number)", "  sent 10 bytes",
             "frames", "  fps 3.0. ok", "runtimes"]
    assert numbered(lines) == ["1. latency", "  p50 1.0", "2. deploy (a stored render's own number)",
                               "  sent 10 bytes", "3. frames", "  fps 3.0. ok", "4. runtimes"]
