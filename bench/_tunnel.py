"""Bulk tunnel throughput: a TCP sink and a client that pushes N bytes through the proxies.

``python -m bench._tunnel sink --port P`` accepts connections; each starts with an 8-byte
big-endian byte count, the sink reads and discards that many bytes, answers one byte ``k`` and
closes. ``python -m bench._tunnel send --port P --bytes N [--connect AUTHORITY]`` opens a
connection (through an HTTP/1.1 ``CONNECT`` first when ``--connect`` is given), sends the count
and N bytes, waits for the ``k`` and prints ``{"bytes": N, "seconds": s}`` as JSON: the time
from the first byte sent until the sink confirmed the last one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 20
IO_TIMEOUT_S = 120.0


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = sock.recv(size - len(data))
        if not part:
            raise ConnectionError("peer closed early")
        data += part
    return data


def _drain(conn: socket.socket) -> None:
    """Read the count, then that many bytes; answer ``k``. Readiness probes that connect and
    close at once (and any broken connection) are simply dropped."""
    with contextlib.suppress(OSError), conn:
        _drain_counted(conn)


def _drain_counted(conn: socket.socket) -> None:
    conn.settimeout(IO_TIMEOUT_S)
    (remaining,) = struct.unpack("!Q", _recv_exact(conn, 8))
    buf = memoryview(bytearray(CHUNK))
    while remaining > 0:
        got = conn.recv_into(buf, min(CHUNK, remaining))
        if got == 0:
            return
        remaining -= got
    conn.sendall(b"k")


def serve_sink(port: int) -> None:
    """Accept forever (until killed); one thread per connection."""
    server = socket.create_server(("127.0.0.1", port), backlog=64)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_drain, args=(conn,), daemon=True).start()


def _open(port: int, authority: str | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if authority is None:
        return sock
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        part = sock.recv(4096)
        if not part:
            raise ConnectionError(f"proxy closed the CONNECT to {authority}")
        head += part
    status = head.split(b"\r\n", 1)[0]
    if b" 200" not in status:
        raise ConnectionError(f"CONNECT {authority} answered {status.decode(errors='replace')}")
    return sock


def send(port: int, total: int, authority: str | None, max_s: float) -> dict[str, float]:
    """Push ``total`` bytes through 127.0.0.1:port; see the module docstring. Past ``max_s``
    it stops early and reports what it sent so far with ``partial: 1`` (bytes still in socket
    buffers, a few MB, are then counted as delivered)."""
    sock = _open(port, authority)
    with sock:
        chunk = memoryview(bytes(CHUNK))
        start = time.perf_counter()
        sock.sendall(struct.pack("!Q", total))
        remaining = total
        while remaining > 0:
            part = chunk[: min(CHUNK, remaining)]
            sock.sendall(part)
            remaining -= len(part)
            if time.perf_counter() - start > max_s:
                seconds = time.perf_counter() - start
                return {"bytes": float(total - remaining), "seconds": seconds, "partial": 1.0}
        if _recv_exact(sock, 1) != b"k":
            raise ConnectionError("the sink did not confirm")
        seconds = time.perf_counter() - start
    return {"bytes": float(total), "seconds": seconds, "partial": 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._tunnel")
    sub = parser.add_subparsers(dest="mode", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--port", type=int, required=True)
    sender = sub.add_parser("send")
    sender.add_argument("--port", type=int, required=True)
    sender.add_argument("--bytes", type=int, required=True)
    sender.add_argument("--connect", default=None, help="authority for an HTTP/1.1 CONNECT")
    sender.add_argument("--max-seconds", type=float, default=180.0, help="stop early after")
    args = parser.parse_args(argv)
    if args.mode == "sink":
        serve_sink(args.port)
        return 0
    print(json.dumps(send(args.port, args.bytes, args.connect, args.max_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
