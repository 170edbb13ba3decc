"""HAProxy configurations of the benchmark: the shared backend and the two-instance reference
topology (A: h2c in, mTLS HTTP/2 out; B: mTLS HTTP/2 in, plain to the backend; plus a TCP-mode
pair with TLS 1.3 between the instances for the bulk tunnel).

Every instance runs one thread (``nbthread 1``), like one isthmus gateway worker, and logs
nothing (the isthmus gateways run with ``access_log: false`` to match).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_GLOBAL = """\
global
    nbthread 1
    maxconn 4000
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
    tune.bufsize 262144

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout tunnel 120s
    option http-keep-alive
    http-reuse always
"""

BODY = "hello from the benchmark backend\n"


def backend_config(http1_port: int, h2c_port: int) -> str:
    """The backend both topologies forward to: a fixed 200 response from HAProxy itself
    (``http-request return``), over HTTP/1.1 keep-alive on one port and h2c on another."""
    return (
        _GLOBAL
        + f"""
frontend backend
    bind 127.0.0.1:{http1_port}
    bind 127.0.0.1:{h2c_port} proto h2
    http-request return status 200 content-type text/plain string "{BODY.strip()}"
"""
    )


@dataclass(frozen=True)
class TlsFiles:
    """An instance's certificate chain + key in one PEM (HAProxy's ``crt``) and the CA file
    holding every trust domain's CA (its ``ca-file``)."""

    crt: Path
    ca_file: Path

    def bind(self) -> str:
        return f"ssl crt {self.crt} ca-file {self.ca_file} verify required"

    def server(self) -> str:
        return f"ssl crt {self.crt} ca-file {self.ca_file} verify required"


def proxy_a_config(
    *, h2c_port: int, tcp_port: int, peer_port: int, peer_tcp_port: int, tls: TlsFiles
) -> str:
    """Instance A (outbound): h2c from the client, HTTP/2 over mTLS to B; TCP mode likewise."""
    return (
        _GLOBAL
        + f"""
frontend outbound
    bind 127.0.0.1:{h2c_port} proto h2
    default_backend peer_b

backend peer_b
    server b 127.0.0.1:{peer_port} {tls.server()} alpn h2

listen outbound_tcp
    mode tcp
    bind 127.0.0.1:{tcp_port}
    server b 127.0.0.1:{peer_tcp_port} {tls.server()}
"""
    )


def proxy_b_config(
    *,
    mtls_port: int,
    tcp_port: int,
    backend_port: int,
    backend_h2c: bool,
    sink_port: int,
    tls: TlsFiles,
) -> str:
    """Instance B (inbound): mTLS HTTP/2 (ALPN h2) in, to the backend; TCP mode to the sink."""
    proto = " proto h2" if backend_h2c else ""
    return (
        _GLOBAL
        + f"""
frontend inbound
    bind 127.0.0.1:{mtls_port} {tls.bind()} alpn h2
    default_backend local

backend local
    server backend 127.0.0.1:{backend_port}{proto}

listen inbound_tcp
    mode tcp
    bind 127.0.0.1:{tcp_port} {tls.bind()}
    server sink 127.0.0.1:{sink_port}
"""
    )


def write_config(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return it."""
    path.write_text(text, encoding="utf-8")
    return path


def haproxy_argv(config: Path) -> list[str]:
    """Run HAProxy in the foreground (``-db``) on ``config``."""
    return ["haproxy", "-db", "-f", str(config)]
