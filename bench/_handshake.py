"""New mTLS handshakes per second against an inbound (east-west) listener.

``python -m bench._handshake --port P --cert C --key K --ca-file F --seconds S --max N
--threads T`` runs T threads, each opening fresh TCP connections in a loop and doing a full
TLS 1.3 handshake (no resumption) with a client certificate and ALPN ``h2``. A handshake counts
once the server's first HTTP/2 frame arrives after our connection preface: by then the server
has verified our certificate chain and accepted our SPIFFE ID (a rejected peer is closed, which
counts as a failure). Prints ``{"ok": n, "failed": m, "seconds": s}`` as JSON. Bounded by both
``--seconds`` and ``--max``.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
FRAME_HEADER = 9


def client_context(cert: str, key: str, ca_file: str) -> ssl.SSLContext:
    """TLS 1.3 only, our client certificate, the peers' CAs, ALPN h2; no hostname check (the
    SPIFFE ID is in a URI SAN, which the server side is what we measure)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca_file)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def one_handshake(ctx: ssl.SSLContext, port: int) -> bool:
    """One fresh connection, handshake, preface, first server frame. True on success."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
            ctx.wrap_socket(raw, server_hostname="gateway.isthmus.invalid") as tls,
        ):
            if tls.selected_alpn_protocol() != "h2":
                return False
            tls.sendall(PREFACE)
            got = b""
            while len(got) < FRAME_HEADER:
                part = tls.recv(4096)
                if not part:
                    return False
                got += part
            return True
    except (OSError, ssl.SSLError):
        return False


def run(
    port: int, ctx: ssl.SSLContext, *, seconds: float, limit: int, threads: int
) -> dict[str, float]:
    """Handshake in ``threads`` threads until ``seconds`` pass or ``limit`` are done."""
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if counts["ok"] + counts["failed"] >= limit:
                    return
            result = one_handshake(ctx, port)
            with lock:
                counts["ok" if result else "failed"] += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 30.0)
    return {"ok": counts["ok"], "failed": counts["failed"], "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._handshake")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    ctx = client_context(args.cert, args.key, args.ca_file)
    result = run(args.port, ctx, seconds=args.seconds, limit=args.max, threads=args.threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
