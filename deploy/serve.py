"""`make serve` / `make stop`: the agent's HTTP server on the board, in the background.

It binds 127.0.0.1 on the board unless --bind says otherwise; reach it with an SSH tunnel.
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
        cmd = (f"cd {q(rel)} && nohup {q(home + '/venv/bin/python')} agent.pyz serve "
               f"{q(rel + '/' + variants[name]['file'])} --manifest {q(rel + '/manifest.json')} "
               f"--host {q(bind)} --port {int(port)} > {q(home + '/serve.log')} 2>&1 < /dev/null & "
               f"echo $! > {q(home + '/serve.pid')}")
        target.run(cmd, timeout=30)
        time.sleep(1.5)
        alive = target.run(f"kill -0 $(cat {q(home + '/serve.pid')}) 2>/dev/null", timeout=30)
        if not alive.ok:
            log = target.run(f"tail -n 3 {q(home + '/serve.log')}", timeout=30).stdout.strip()
            raise DeployError(f"{target.name}: the server exited at once: {log.splitlines()[-1] if log else 'no log'}")
        return f"serving {name} on {bind}:{port} (log {home}/serve.log)", {}
    finally:
        target.close()


def _stop(target, home: str) -> bool:
    pidfile = q(home + "/serve.pid")
    res = target.run(f"[ -f {pidfile} ] && pid=$(cat {pidfile}) && kill $pid 2>/dev/null; "
                     f"rc=$?; rm -f {pidfile}; exit $rc", timeout=30)
    return res.ok


def stop_one(spec: str, options: Options) -> tuple[str, dict]:
    target, board = open_board(spec, options)
    try:
        return ("stopped" if _stop(target, board.home) else "no server was running"), {}
    finally:
        target.close()
