"""`python -m deploy COMMAND`: what the Makefile's deploy/bench/profile/serve/stop/releases/rollback call.

Commands (deploy.commands.COMMANDS, the one table this command line is built from):
  push      ship runtime, agent and bundle to the board(s); --rollout canary|rolling for fleets
  bench     run info/bench/eval on the board(s), store results/<host>/...json
  profile   per-operator latency and memory plan on the board(s)
  serve     start the agent's HTTP server on the board
  stop      stop a server started by serve
  releases  list the releases on the board(s): current, served, size
  rollback  switch back to the previous (or a named) release; the service follows

Every user-fixable problem is one line on stderr, `deploy: error: <message>`, and a non-zero
exit: 1 when a step failed (DeployError), 2 for usage or bad input (UsageError, argparse).
"""
from __future__ import annotations

import argparse
import os
import sys

from deploy.boards.session import parse_hosts
from deploy.commands import COMMANDS
from deploy.errors import DeployError
from device.errors import EXIT_USAGE

PROG = "python -m deploy"
ERROR = "deploy: error:"      # the one prefix of every error line this command prints


class _Parser(argparse.ArgumentParser):
    """argparse with deploy's error line: the usage, then `deploy: error: ...`, exit 2."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{ERROR} {message}\n")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage 0-100")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if name not in ("stop", "releases", "rollback"):
            p.add_argument("--bundle", required=True, help="bundle directory (artifacts/<name>)")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--host", help="local, user@host:port, a name or an ssh-config alias")
        where.add_argument("--hosts", help="a,b,c or @fleet.txt: several boards in parallel")
        p.add_argument("--profile", help="profile name or YAML path (default: picked from the board)")
        p.add_argument("--ssh-key", help="private key file to use")
        p.add_argument("--trust-new-host", action="store_true",
                       help="accept and record an unknown host key (like ssh accept-new)")
        if name in ("push", "bench"):
            p.add_argument("--agent", help="use this agent.pyz instead of building one from device/")
            p.add_argument("--runtimes", help="litert,onnxruntime: push installs ONNX Runtime beside LiteRT; "
                                              "bench runs each runtime's variants (default: what the board has)")
        if name == "push":
            p.add_argument("--wheelhouse", action="store_true",
                           help="install the runtime from a host-built wheelhouse even if the board is online")
            p.add_argument("--extras", help="opt-in optional extras to install too, e.g. opencv-python-headless "
                                            "(video:/camera:/stream sources, --record; see device/requirements-extras.txt)")
            p.add_argument("--keep", type=_positive, default=3,
                           help="releases kept on the board after a deploy (never the current or served one)")
            p.add_argument("--rollout", choices=("canary", "rolling"),
                           help="canary: one board first; rolling: --batch boards at a time (default: all at once)")
            p.add_argument("--batch", type=_positive, help="boards per batch after the first (rolling; default 1)")
            p.add_argument("--max-fail", type=_percent, default=0.0,
                           help="percent of a batch's boards that may fail before the rollout stops (default 0)")
        if name == "rollback":
            p.add_argument("--release", help="release id (default: the one that was current before)")
        if name in ("bench", "profile"):
            p.add_argument("--results", help="results directory (default: results/)")
        if name == "bench":
            p.add_argument("--video", help="also run the frame pipeline end to end on this clip on the board "
                                           "(fps, latency, stage split; needs OpenCV there)")
        if name == "profile":
            p.add_argument("--variant", help="profile only this variant (default: the profile's variants)")
            p.add_argument("--cut-on-host", action="store_true",
                           help="cut the models here and ship the pieces (automatic on tflite-runtime boards)")
        if name == "serve":
            p.add_argument("--variant", help="model variant to serve (default: int8 if present)")
            p.add_argument("--port", type=int, default=8080)
            p.add_argument("--bind", default="127.0.0.1", help="address on the board (default 127.0.0.1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    trust = args.trust_new_host or os.environ.get("TRUST_NEW_HOST", "").lower() in ("1", "yes", "true")
    args.trust_new_host = trust
    try:
        hosts = parse_hosts(args.host, args.hosts)
        return COMMANDS[args.command].run(args, hosts)
    except DeployError as e:
        print(f"{ERROR} {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{ERROR} interrupted; the board keeps its previous release", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
