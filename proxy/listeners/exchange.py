"""What a listener hands the engine for each request: an :class:`Exchange`.

An exchange is one request (head + streamed body) plus the means to answer it. The listener's
connection driver owns it; the engine's :meth:`RequestHandler.handle` drives it and returns
when the response is complete (or the exchange was aborted). Protocol differences (h11 vs h2)
stay behind this interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

from proxy.errors import ProxyError
from proxy.protocol.events import Headers

ListenerKind = Literal["outbound", "inbound"]


class DownstreamGone(ProxyError):
    """The client reset the stream or closed the connection while we were answering it."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What the inbound listener's ``verify_peer`` proved about the calling peer gateway.

    ``cluster`` is the peer's cluster name (routing decisions, ``allows_source``,
    ``x-isthmus-source-cluster``, metrics); ``identity`` is the verified identity string it
    presented (``x-isthmus-source-identity``, access log). The proxy treats ``identity`` as
    opaque: it never parses it (the gateway puts the peer's SPIFFE ID there)."""

    cluster: str
    identity: str


@dataclass(frozen=True, slots=True)
class Downstream:
    """Who is calling: the listener kind, the TCP peer and, on the inbound (mTLS) listener,
    the peer's cluster and verified identity as ``verify_peer`` returned them (both ``None``
    on the outbound listener). ``tunnel_idle_timeout_s`` is the listener's
    (``ListenerLimits``): how long a CONNECT tunnel of this caller may stay silent."""

    listener: ListenerKind
    remote: str
    peer: PeerIdentity | None = None
    protocol: Literal["http/1.1", "h2", "h2c"] = "http/1.1"
    tls: bool = False
    tunnel_idle_timeout_s: float = 3600.0

    @property
    def peer_cluster(self) -> str | None:
        """The verified peer's cluster name (inbound), else ``None``."""
        return None if self.peer is None else self.peer.cluster

    @property
    def peer_identity(self) -> str | None:
        """The verified peer's identity string (inbound), else ``None``."""
        return None if self.peer is None else self.peer.identity


class Exchange(Protocol):
    """One request and its response channel.

    ``body`` yields the request body as the engine pulls it (pulling is what gives the client
    flow-control credit back); it is ``None`` when the request has no body. It raises
    :class:`DownstreamGone` if the client goes away mid-body.
    """

    downstream: Downstream
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    headers: Headers
    body: AsyncIterator[bytes] | None

    @property
    def response_started(self) -> bool: ...

    async def start_response(
        self, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        """Send the response head; ``end_stream`` for a response without a body."""

    async def send_data(self, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes, waiting for flow-control credit; raises :class:`DownstreamGone`.
        ``end_stream``: these are the last bytes (as :meth:`end_response` without trailers,
        in the same HTTP/2 frame)."""

    async def end_response(self, trailers: Headers | None = None) -> None:
        """Finish the response body (with trailers on HTTP/2)."""

    async def abort(self) -> None:
        """Give up on this exchange: HTTP/2 resets the stream, HTTP/1.1 closes the connection."""

    async def accept_tunnel(self) -> trio.abc.HalfCloseableStream:
        """Answer CONNECT with 200 and return the client side of the tunnel as a byte stream
        (owned by the connection driver: the caller must not close it, only ``send_eof``)."""


class RequestHandler(Protocol):
    """The engine as the listeners see it."""

    async def handle(self, exchange: Exchange) -> None:
        """Answer ``exchange`` completely (CONNECT included). Must not raise for upstream
        failures (answer 502/503/504 instead); may raise :class:`DownstreamGone`."""
