"""The emulated aarch64 board: `make board` / `make board-stop` (python -m emuboard).

prereqs.py  host packages (qemu-user from bookworm-backports) and binfmt_misc
image.py    the Debian bookworm arm64 root filesystem, built once and cached as a tarball
network.py  one network namespace and veth pair per board, on its own private /24
relay.py    an online board's only way out: TCP to the package index hosts
sshconfig.py  the Host entries and pinned host keys deploy reads from $EDGEKIT_HOME
board.py    start/stop: overlay, namespaces, sshd, pid files, teardown
loopback.py the lightweight stand-in: a real sshd on 127.0.0.1 (deploy tests, `make perf`)

Standalone: imports nothing from host/, deploy/ or device/.
"""
