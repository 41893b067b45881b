"""`make perf`: the toolkit's own figures."""
