"""Local replies: answers the gateway makes itself (404, 403, 503, 504, injected faults)."""

from __future__ import annotations

from proxy.engine.context import Outcome
from proxy.listeners.exchange import Exchange
from proxy.routes.headers import REASON, Headers


async def reply(exchange: Exchange, out: Outcome, answer: tuple[int, Headers, bytes]) -> None:
    """Send ``answer`` (status, headers, body) unless a response already started (then the
    exchange is aborted). An unread request body is the connection driver's business
    (HTTP/1.1 closes the connection after us)."""
    status, headers, body = answer
    out.status = status
    out.reason = next((v.decode() for n, v in headers if n == REASON), "")
    if exchange.response_started:
        await exchange.abort()
        return
    await exchange.start_response(status, headers)
    await exchange.send_data(body)
    await exchange.end_response()
    out.bytes_sent += len(body)
