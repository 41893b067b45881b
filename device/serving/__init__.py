"""The long-running agent: HTTP service, model hand-over, metrics, access log."""
