"""`make serve` / `make stop`: the agent's HTTP server on the board, in the background.

It binds 127.0.0.1 on the board unless --bind says otherwise; reach it with an SSH tunnel.
With a user systemd it runs as a unit that restarts on failure; else under a restart loop.
The pid lives in <board home>/serve.pid so `stop` ends exactly that process.
"""
from __future__ import annotations

import json
import shlex
import time

from deploy.boards.session import Options, open_board
from deploy.errors import DeployError
from deploy.releases.ship import board_call

q = shlex.quote


def serve_one(spec: str, variant: str | None, port: int, bind: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        home = board.home
        res = target.run(f"cd {q(home + '/current')} && pwd -P && cat manifest.json", timeout=30)
        if not res.ok:
            raise DeployError(f"{target.name}: nothing deployed yet; run `make deploy` first")
        _, _, body = res.stdout.partition("\n")
        variants = json.loads(body)["variants"]
        name = variant or ("int8" if "int8" in variants else sorted(variants)[0])
        if name not in variants:
            raise DeployError(f"no variant {name!r} in the deployed bundle ({', '.join(variants)})")
        _stop(target, home)
        target.run(f"rm -f {q(home + '/served')}", timeout=30)      # `make serve` starts from `current`
        argv = _write_launcher(target, home, variants[name]["file"], bind, port, variants[name].get("runtime"))
        how = _start_systemd(target, argv) if _has_user_systemd(target) else _start_supervised(target, home, argv)
        answer = _wait_serving(target, home)
        if not answer.get("service"):
            log = target.run(f"tail -n 3 {q(home + '/serve.log')}", timeout=30).stdout.strip()
            raise DeployError(f"{target.name}: the server did not come up: {log.splitlines()[-1] if log else 'no log'}")
        return (f"serving {name} on {bind}:{port} (release {answer.get('release')}, following deploys; {how}; "
                f"log {home}/serve.log)", answer)
    finally:
        target.close()


def _write_launcher(target, home: str, model_file: str, bind: str, port: int, runtime: str | None = None) -> str:
    """<home>/serve.sh: a (re)start serves the release the service last served (`served`, kept by the
    service itself), else `current`; --follow then moves it to `current` and to every later release
    (deploy, rollback) after checking each, so a crash never restarts into a model that failed."""
    script = (f"#!/bin/sh\n# written by `make serve`\n"
              f"r=$(cd {q(home + '/served')} 2>/dev/null && pwd -P) || r=$(cd {q(home + '/current')} && pwd -P) || exit 1\n"
              f"exec {q(home + '/venv/bin/python')} \"$r/agent.pyz\" serve \"$r/\"{q(model_file)} "
              f"--manifest \"$r/manifest.json\" --follow {q(home + '/current')} --state {q(home + '/serve.json')} "
              f"--host {q(bind)} --port {int(port)}{f' --runtime {q(runtime)}' if runtime else ''}\n")
    path = home + "/serve.sh"
    res = target.run(f"printf %s {q(script)} > {q(path)}", timeout=30)
    if not res.ok:
        raise DeployError(f"{target.name}: cannot write {path}: {res.stderr.strip()[-200:]}")
    return f"/bin/sh {q(path)}"


UNIT = "edgekit-serve.service"
START_TIMEOUT_S = 120.0


def _wait_serving(target, home: str) -> dict:
    """Poll until the new server answers /info on the board (it writes serve.json once listening),
    or its process group is gone, or the time is up."""
    started = time.monotonic()
    while time.monotonic() < started + START_TIMEOUT_S:
        answer = board_call(target, "served", {"home": home, "release": None, "timeout": 5}, timeout=60)
        if answer.get("service"):
            return answer
        if time.monotonic() > started + 5 and not _running(target, home):   # 5 s: the launcher's exec
            return answer
        time.sleep(0.3)
    return {"service": False}


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
