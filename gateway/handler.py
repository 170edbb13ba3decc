"""The request handler the listeners call: peer probes are answered here, the rest by the engine.

Peer gateways probe ``GET /readyz`` with ``:authority`` = the probe authority over the mTLS
connection every second (:meth:`proxy.upstream.UpstreamPools.probe`). That is gateway state
(readiness, draining), so it is answered from :class:`GatewayStatus` without touching the
routing table, and only on the inbound listener (the caller is an admitted peer gateway).
"""

from __future__ import annotations

from gateway.status import GatewayStatus
from proxy.engine import ForwardingEngine
from proxy.listeners import Exchange

DEFAULT_PROBE_AUTHORITY = b"isthmus-gateway"


class GatewayHandler:
    """Implements :class:`proxy.listeners.RequestHandler`."""

    def __init__(
        self,
        engine: ForwardingEngine,
        status: GatewayStatus,
        *,
        probe_authority: bytes = DEFAULT_PROBE_AUTHORITY,
    ) -> None:
        self.engine = engine
        self._status = status
        self._probe_authority = probe_authority

    async def handle(self, exchange: Exchange) -> None:
        if (
            exchange.downstream.listener == "inbound"
            and exchange.authority == self._probe_authority
            and exchange.method in (b"GET", b"HEAD")
        ):
            await self._answer_probe(exchange)
            return
        await self.engine.handle(exchange)

    async def _answer_probe(self, exchange: Exchange) -> None:
        if exchange.path == b"/readyz":
            ready, reason = self._status.readiness()
            status, body = (200 if ready else 503), f"{reason}\n".encode()
        elif exchange.path == b"/healthz":
            status, body = 200, b"ok\n"
        else:
            status, body = 404, b"unknown probe path\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if exchange.method == b"HEAD":
            await exchange.start_response(status, headers, end_stream=True)
            return
        await exchange.start_response(status, headers)
        await exchange.send_data(body)
        await exchange.end_response()
