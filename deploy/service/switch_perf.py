"""The model hand-over under load (for `make perf`): HOST=local serves a bundle, loopback clients
post requests without pause, and a changed bundle is deployed in the middle.

Figures: requests sent, failed (target 0), client p99 before / during / after the deploy, the
deploy's wall time and the time from the deploy's start to the first answer from the new release.
Everything runs under a temp EDGEKIT_HOME (the runtime venv is reused from ~/.edgekit when one
is there, else installed into the temp home), so the real board state is not touched.
`python -m deploy.service.switch_perf --bundle artifacts/NAME [--secs 3] [--json OUT]`.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from deploy.releases import ship as releases
from deploy.releases.agent import build_agent
from deploy.boards.session import Options
from deploy.releases.push import push_one
from deploy.service.launch import serve_one, stop_one


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _changed(bundle: Path, dst: Path) -> Path:
    shutil.copytree(bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["perf_switch"] = time.time()          # same models, new release id
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _p99(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 99)), 1) if values else None


class _Load:
    def __init__(self, port: int, clients: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/info")
        spec = json.loads(conn.getresponse().read())["inputs"][0]
        buf = io.BytesIO()
        np.save(buf, np.zeros([max(1, d) for d in spec["shape"]], dtype=spec["dtype"]))
        self.body, self.port = buf.getvalue(), port
        self.records: list[tuple[float, float, object, str | None]] = []   # (sent, answered, status, release)
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                conn.request("POST", "/infer", body=self.body)
                resp = conn.getresponse()
                status, release = resp.status, json.loads(resp.read()).get("release")
            except (OSError, ValueError, http.client.HTTPException) as e:
                status, release = type(e).__name__, None
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.lock:
                self.records.append((t0, time.monotonic(), status, release))

    def finish(self) -> list:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return self.records


@contextlib.contextmanager
def _temp_home():
    old = os.environ.get("EDGEKIT_HOME")
    real_venv = Path(old or Path.home() / ".edgekit") / "venv"
    with tempfile.TemporaryDirectory(prefix="edgekit-switch-perf-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        if (real_venv / "bin" / "python").exists():
            os.symlink(real_venv.resolve(), home / "venv")
        os.environ["EDGEKIT_HOME"] = str(home)
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("EDGEKIT_HOME", None)
            else:
                os.environ["EDGEKIT_HOME"] = old


def measure(bundle: Path, secs: float = 3.0, clients: int = 4) -> dict:
    agent = build_agent(None)
    options = Options()
    with _temp_home() as tmp, contextlib.redirect_stdout(io.StringIO()):
        first = releases.prepare(bundle, agent)
        second = releases.prepare(_changed(bundle, tmp / "changed"), agent)
        push_one("local", first, options)
        port = _free_port()
        serve_one("local", None, port, "127.0.0.1", options)
        try:
            load = _Load(port, clients)
            time.sleep(secs)                           # the "before" window (a benchmark, not a test)
            start = time.monotonic()
            push_one("local", second, options)
            end = time.monotonic()
            time.sleep(secs)                           # the "after" window
            records = load.finish()
        finally:
            stop_one("local", options)
    lat = {"before": [], "during": [], "after": []}
    for sent, got, status, _ in records:
        if status == 200:
            window = "before" if got < start else "during" if sent <= end else "after"
            lat[window].append((got - sent) * 1e6)
    first_new = min((got for _, got, status, rel in records if status == 200 and rel == second.id), default=None)
    failed = [r for r in records if r[2] != 200]
    return {"requests": len(records), "failed": len(failed), "clients": clients,
            "p99_us_before": _p99(lat["before"]), "p99_us_during": _p99(lat["during"]),
            "p99_us_after": _p99(lat["after"]),
            "requests_during": len(lat["during"]), "deploy_s": round(end - start, 3),
            "deploy_start_to_first_new_answer_s": round(first_new - start, 3) if first_new else None,
            "old_release": first.id, "new_release": second.id,
            "note": "same models under a new manifest (a new release); the service checks and loads "
                    "the new release while answering from the old one"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.service.switch_perf", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="artifacts/mnist5k")
    p.add_argument("--secs", type=float, default=3.0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    figures = measure(Path(args.bundle), args.secs)
    text = json.dumps(figures, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0 if figures["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
