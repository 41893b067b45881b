"""`make serve` / `make stop`: the agent's HTTP server on the board, in the background.

It binds 127.0.0.1 on the board unless --bind says otherwise; reach it with an SSH tunnel.
With a user systemd it runs as a unit that restarts on failure; else under a restart loop.
The pid lives in <board home>/serve.pid so `stop` ends exactly that process.
"""
from __future__ import annotations

import json
import shlex
import time

from deploy.errors import DeployError
from deploy.push import Options, open_board

q = shlex.quote


def serve_one(spec: str, variant: str | None, port: int, bind: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        home = board.home
        res = target.run(f"cd {q(home + '/current')} && pwd -P && cat manifest.json", timeout=30)
        if not res.ok:
            raise DeployError(f"{target.name}: nothing deployed yet; run `make deploy` first")
        rel, _, body = res.stdout.partition("\n")
        rel = rel.strip()
        variants = json.loads(body)["variants"]
        name = variant or ("int8" if "int8" in variants else sorted(variants)[0])
        if name not in variants:
            raise DeployError(f"no variant {name!r} in the deployed bundle ({', '.join(variants)})")
        _stop(target, home)
        argv = " ".join(q(a) for a in [home + "/venv/bin/python", rel + "/agent.pyz", "serve",
                                        rel + "/" + variants[name]["file"], "--manifest", rel + "/manifest.json",
                                        "--host", bind, "--port", str(int(port))])
        how = _start_systemd(target, argv) if _has_user_systemd(target) else _start_supervised(target, home, argv)
        time.sleep(1.5)
        if not _running(target, home):
            log = target.run(f"tail -n 3 {q(home + '/serve.log')}", timeout=30).stdout.strip()
            raise DeployError(f"{target.name}: the server exited at once: {log.splitlines()[-1] if log else 'no log'}")
        return f"serving {name} on {bind}:{port} ({how}; log {home}/serve.log)", {}
    finally:
        target.close()


UNIT = "edgekit-serve.service"


def _has_user_systemd(target) -> bool:
    """A user systemd instance restarts the server on failure and at boot (with linger enabled)."""
    return target.run("systemctl --user show-environment >/dev/null 2>&1", timeout=30).ok


def _start_systemd(target, argv: str) -> str:
    unit = (f"[Unit]\nDescription=edgekit agent serve\n[Service]\nExecStart={argv}\n"
            f"Restart=on-failure\nRestartSec=2\n[Install]\nWantedBy=default.target\n")
    res = target.run(f"mkdir -p ~/.config/systemd/user && printf %s {q(unit)} > ~/.config/systemd/user/{UNIT} && "
                     f"systemctl --user daemon-reload && systemctl --user restart {UNIT}", timeout=60)
    if not res.ok:
        raise DeployError(f"{target.name}: systemctl --user could not start {UNIT}: {res.stderr.strip()[-200:]}")
    return f"user systemd unit {UNIT}"


def _start_supervised(target, home: str, argv: str) -> str:
    """No systemd: a shell loop in its own session restarts the server if it dies; the pid file
    names the loop, whose process group `stop` signals (SIGTERM lets requests in flight finish)."""
    loop = f"while :; do {argv}; [ $? -eq 0 ] && break; sleep 2; done"
    target.run(f"cd {q(home)} && setsid nohup sh -c {q(loop)} >> {q(home + '/serve.log')} 2>&1 < /dev/null & "
               f"echo $! > {q(home + '/serve.pid')}", timeout=30)
    return "supervised background process"


def _running(target, home: str) -> bool:
    pidfile = q(home + "/serve.pid")
    return target.run(f"systemctl --user is-active --quiet {UNIT} 2>/dev/null || "
                      f"{{ [ -f {pidfile} ] && pgrep -g $(cat {pidfile}) -f agent.pyz >/dev/null; }}", timeout=30).ok


def _stop(target, home: str) -> bool:
    pidfile = q(home + "/serve.pid")
    res = target.run(f"if systemctl --user is-active --quiet {UNIT} 2>/dev/null; then systemctl --user stop {UNIT}; "
                     f"elif [ -f {pidfile} ]; then kill -TERM -$(cat {pidfile}) 2>/dev/null; rc=$?; rm -f {pidfile}; "
                     f"exit $rc; else exit 1; fi", timeout=30)
    return res.ok


def stop_one(spec: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        return ("stopped" if _stop(target, board.home) else "no server was running"), {}
    finally:
        target.close()
