"""`python -m emuboard start [--suite trixie|bookworm] [--boards N] [--offline] [--cpu C] | stop |
status` (make board / board-stop / board-status).

Exit status: 0 ok, 1 the board failed (build, start, ssh check), 2 usage or bad input.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import sys
from pathlib import Path

from . import board as boards
from .image import DEFAULT_SUITE, SUITES
from .errors import BoardError


def sudo_user() -> pwd.struct_passwd | None:
    """Under `sudo make board`, the user who will run `make deploy` afterwards."""
    name = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not name or name == "root" or os.environ.get("EDGEKIT_HOME"):
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def home_for_cli() -> Path:
    """$EDGEKIT_HOME, else the invoking user's ~/.edgekit (also under sudo)."""
    user = sudo_user()
    return Path(user.pw_dir) / ".edgekit" if user else boards.edgekit_home()


def hand_over(home: Path, started: list[boards.Board]) -> None:
    """Let the sudo user read what deploy needs: ssh_config, known_hosts, the client keys."""
    user = sudo_user()
    if not user:
        return
    for path in [home, home / "ssh_config", home / "known_hosts"] + \
            [p for b in started for p in (b.key, b.key.with_suffix(".pub"))]:
        if path.exists():
            os.chown(path, user.pw_uid, user.pw_gid)


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage block and exit
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"board: error: {exc} (see python -m emuboard --help)", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = _Parser(prog="python -m emuboard",
                     description="Emulated aarch64 boards (Debian arm64 under qemu-user, one "
                                 "network namespace each). Needs root.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="build (once) and start boards")
    start.add_argument("--suite", choices=list(SUITES), default=DEFAULT_SUITE,
                       help="; ".join(f"{k}: {v}" for k, v in SUITES.items()) +
                            f" (default {DEFAULT_SUITE})")
    start.add_argument("--boards", type=int, default=1, help="how many (default 1)")
    start.add_argument("--offline", action="store_true",
                       help="no route to any package index (exercises the offline wheelhouse)")
    start.add_argument("--cpu", default=boards.DEFAULT_CPU,
                       help="qemu CPU model (default cortex-a72, a Pi 4; cortex-a76 is a Pi 5)")
    sub.add_parser("stop", help="stop every board started from this EDGEKIT_HOME")
    sub.add_parser("status", help="list running boards")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            if not 1 <= args.boards <= 16:
                raise UsageError("--boards must be between 1 and 16")
            home = home_for_cli()
            started = boards.start(args.boards, args.offline, home=home, cpu=args.cpu,
                                   suite=args.suite)
            hand_over(home, started)
            for b in started:
                print(f"  {b.name}: " + shlex.join(b.ssh_argv(home / "known_hosts")))
            hosts = ",".join(b.name for b in started)
            var = "HOST" if len(started) == 1 else "HOSTS"
            print(f"{var}={hosts}")
            print(f"next: make deploy {var}={hosts} && make bench {var}={hosts}; "
                  f"make board-stop when done")
        elif args.command == "stop":
            if boards.stop(home_for_cli()) == 0:
                print("board: no boards running")
        else:
            if not boards.load_boards(home_for_cli()):
                print("board: no boards running")
            for b in boards.load_boards(home_for_cli()):
                print(f"{b.name}\t{b.suite}\t{b.user}@{b.board_ip}\t{b.cpu}\t"
                      f"{'offline' if b.offline else 'online'}\t{'up' if boards.healthy(b) else 'down'}")
    except BoardError as exc:
        print(f"board: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("board: interrupted (run `make board-stop` to clean up)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
