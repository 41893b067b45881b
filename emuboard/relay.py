"""The online board's only way out: a TCP relay to the package index, and nothing else.

The board's namespace has no default route. Its /etc/hosts points pypi.org and
files.pythonhosted.org at two addresses on the host's end of its veth pair; this relay listens on
exactly those two addresses, port 443, and pipes bytes to the real host of that name. TLS stays
end to end (the board checks the certificates itself), and deploy's "can the board reach the
index?" probe works unchanged. An offline board simply gets no relay.

Run as `python -m emuboard.relay IP=HOST [IP=HOST...]`; the board tool starts and stops it.
"""

from __future__ import annotations

import socket
import sys
import threading

PORT = 443
CONNECT_TIMEOUT_S = 20
MAX_CLIENTS = 64  # bounded: pip opens a handful of connections


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_one(client: socket.socket, upstream_host: str, slots: threading.Semaphore) -> None:
    try:
        upstream = socket.create_connection((upstream_host, PORT), timeout=CONNECT_TIMEOUT_S)
        upstream.settimeout(None)
    except OSError:
        client.close()
        slots.release()
        return
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()
    slots.release()


def bind(address: str) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, PORT))
    server.listen(16)
    return server


def listen(server: socket.socket, upstream_host: str, slots: threading.Semaphore) -> None:
    while True:
        client, _ = server.accept()
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=serve_one, args=(client, upstream_host, slots), daemon=True).start()


def main(argv: list[str]) -> int:
    routes = [arg.split("=", 1) for arg in argv]
    try:
        servers = [(bind(addr), host) for addr, host in routes]
    except OSError as exc:
        print(f"relay: cannot listen: {exc}", file=sys.stderr)
        return 1
    slots = threading.Semaphore(MAX_CLIENTS)
    threads = [threading.Thread(target=listen, args=(server, host, slots), daemon=True)
               for server, host in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
