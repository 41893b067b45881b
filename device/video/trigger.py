"""`--on-detect 'LABEL>=SCORE' --exec CMD | --webhook URL`: a detection triggers something, at most
once per --cooldown seconds (a person standing at the door is one event, not thirty a second).

CMD is split like a shell would split it but never run through a shell (no injection through
labels); it gets the frame's answer as JSON on stdin and EDGEKIT_LABEL / EDGEKIT_SCORE in its
environment, and runs in the background (the pipeline never waits for it). A webhook gets the same
JSON as a POST, from a background thread. Triggers are counted in the summary (`triggers`)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
from typing import Any, Optional

from device.errors import EXIT_USAGE, AgentError

RULE = re.compile(r"^\s*(?P<label>[^<>=]+?)\s*(?:>=\s*(?P<score>[0-9]*\.?[0-9]+))?\s*$")


def parse_rule(text: str) -> tuple:
    """'person>=0.6' -> ('person', 0.6); 'cat' -> ('cat', 0.0); '*>=0.5' any label."""
    m = RULE.match(text or "")
    if not m:
        raise AgentError(f"--on-detect {text!r}: expected LABEL>=SCORE (e.g. person>=0.6, or *>=0.5)",
                         EXIT_USAGE, "usage")
    return m.group("label"), float(m.group("score") or 0.0)


def matches(record: dict, label: str, score: float) -> Optional[dict]:
    """The best detection (or class, or pose) of the answer that fits the rule, else None."""
    found = [d for d in record.get("detections", []) + record.get("top_k", [])
             if (label == "*" or d.get("label") == label) and d.get("score", 0.0) >= score]
    found += [{"label": "person", "score": p["score"]} for p in record.get("poses", [])
              if label in ("*", "person") and p.get("score", 0.0) >= score]
    return max(found, key=lambda d: d["score"]) if found else None


class Trigger:
    """A pipeline sink that fires the command or the webhook when a frame's answer fits the rule."""

    def __init__(self, rule: str, command: Optional[str], webhook: Optional[str], cooldown: float):
        if not (command or webhook):
            raise AgentError("--on-detect needs --exec CMD or --webhook URL", EXIT_USAGE, "usage")
        if webhook and not webhook.startswith(("http://", "https://")):
            raise AgentError(f"--webhook {webhook!r}: expected an http:// or https:// URL", EXIT_USAGE, "usage")
        self.label, self.score = parse_rule(rule)
        self.argv = shlex.split(command) if command else None
        self.webhook, self.cooldown = webhook, cooldown
        self.last: Optional[float] = None
        self.fired, self.children = 0, []

    def frame(self, record: dict, picture: Any) -> None:
        pass

    def done(self, record: dict) -> None:
        hit = matches(record, self.label, self.score)
        now = time.monotonic()
        if hit is None or (self.last is not None and now - self.last < self.cooldown):
            return
        self.last, self.fired = now, self.fired + 1
        body = json.dumps(dict(record, trigger=hit)).encode()
        if self.argv:
            env = dict(os.environ, EDGEKIT_LABEL=str(hit["label"]), EDGEKIT_SCORE=str(hit["score"]))
            try:
                child = subprocess.Popen(self.argv, stdin=subprocess.PIPE, env=env)
                child.stdin.write(body)
                child.stdin.close()
                self.children.append(child)
            except OSError as exc:
                raise AgentError(f"--exec {self.argv[0]}: cannot run it ({exc.strerror})", EXIT_USAGE, "usage") \
                    from None
        if self.webhook:
            post = threading.Thread(target=self._post, args=(body,), daemon=True)
            post.start()
            self.children.append(post)

    def _post(self, body: bytes) -> None:
        import urllib.request
        request = urllib.request.Request(self.webhook, data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except Exception:
            pass        # a webhook that is down must never stop the camera

    def close(self, summary: dict) -> None:
        summary["triggers"] = self.fired
        for child in self.children:       # the last events still go out before the run ends
            try:
                child.join(5) if isinstance(child, threading.Thread) else child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
