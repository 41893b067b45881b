"""The frame pipeline (`infer --source`, `serve --source`): capture in its own thread, the newest
frame wins, per-stage timings, and the sinks (JSON lines, an annotated recording, MJPEG)."""
