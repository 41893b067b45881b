"""`serve` GET /metrics (Prometheus text, parsed by prometheus_client), the token rule, the release
facts in /info and /infer, and the size-bounded JSON-lines access log."""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.device.serving.test_serve import Server, _npy

pytestmark = pytest.mark.timeout(120)


def scrape(server: Server, headers: dict = None) -> tuple[int, str]:
    req = urllib.request.Request(server.url("/metrics"), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(text: str) -> dict:
    """(sample name, frozen labels) -> value, through the reference parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_parse_and_count_what_was_sent(bundle, tmp_path):
    log = tmp_path / "access.jsonl"
    server = Server(bundle["model"], "--manifest", bundle["manifest"], "--access_log", log,
                    "--access_log_max_mb", "0.001")
    try:
        good, bad = 7, 3
        for i in range(good):
            status, out = server.request("/infer", _npy(bundle["x"][i]))
            assert status == 200, out
            assert out["sha256"] == hashlib.sha256(open(bundle["model"], "rb").read()).hexdigest()
            assert "release" in out
        for _ in range(bad):
            assert server.request("/infer", b"not an image")[0] == 400
        assert server.request("/nowhere")[0] == 404
        status, info = server.request("/info")
        assert status == 200 and info["sha256"] == out["sha256"] and info["switch_error"] is None
        status, text = scrape(server)
        assert status == 200
        m = samples(text)
        assert m[("edgekit_requests_total", (("code", "200"), ("endpoint", "/infer")))] == good
        assert m[("edgekit_requests_total", (("code", "400"), ("endpoint", "/infer")))] == bad
        assert m[("edgekit_requests_total", (("code", "404"), ("endpoint", "other")))] == 1
        assert m[("edgekit_requests_total", (("code", "200"), ("endpoint", "/info")))] == 1
        assert m[("edgekit_inference_seconds_count", ())] == good
        assert m[("edgekit_inference_seconds_bucket", (("le", "+Inf"),))] == good
        assert 0 < m[("edgekit_inference_seconds_sum", ())] < good * 1.0
        assert m[("edgekit_requests_in_flight", ())] == 1          # the scrape itself
        assert m[("process_resident_memory_bytes", ())] > 10e6
        assert m[("edgekit_uptime_seconds", ())] > 0
        [info_labels] = [dict(k[1]) for k in m if k[0] == "edgekit_model_info"]
        assert info_labels["sha256"] == out["sha256"] and info_labels["runtime"] == "ai_edge_litert"
        # a second scrape counts the first one
        m2 = samples(scrape(server)[1])
        assert m2[("edgekit_requests_total", (("code", "200"), ("endpoint", "/metrics")))] == 1
    finally:
        assert server.stop() == 0
    lines = [json.loads(l) for p in (log.with_name(log.name + ".1"), log) if p.exists()
             for l in p.read_text().splitlines()]
    assert {"path", "status", "ms", "release"} <= set(lines[-1])
    assert log.stat().st_size <= 0.001 * 1024 * 1024
    assert log.with_name(log.name + ".1").exists(), "the log was never rotated at its size bound"


def test_metrics_need_the_token_when_one_is_set(bundle):
    server = Server(bundle["model"], "--token", "s3cret")
    try:
        assert scrape(server)[0] == 401
        status, text = scrape(server, {"Authorization": "Bearer s3cret"})
        assert status == 200 and samples(text)
    finally:
        server.stop()


def test_access_log_flag_alone_still_logs_to_stderr(bundle):
    server = Server(bundle["model"], "--access_log")
    try:
        assert server.request("/health")[0] == 200
    finally:
        server.stop()
    assert '"GET /health HTTP/1.1" 200' in server.stderr()
