"""`make report`: the benchmark report from stored results."""
