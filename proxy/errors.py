"""Error root of the data-plane engine. Subclasses are named by who failed."""

from proxy.retry.policy import FailureKind


class ProxyError(Exception):
    """Root of every error raised by :mod:`proxy`."""


class UpstreamError(ProxyError):
    """An upstream (local backend or peer gateway) failed; grouped by cause, httpcore style.

    ``failure`` names the retry condition the request met (a
    :class:`proxy.retry.FailureKind`), or ``None`` when the
    failure is not one the retry policy may act on (for example a reset mid-body, after the
    response was already forwarded). ``endpoint`` is the endpoint key.
    """

    failure: FailureKind | None = None

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectFailure(UpstreamError):
    """No usable connection: refused, unreachable, TLS handshake failed, or the peer did not
    present its expected identity. Nothing was sent, so retrying elsewhere is always safe."""

    failure = FailureKind.CONNECT_FAILURE


class ResetBeforeHeaders(UpstreamError):
    """The stream was reset or the connection lost before response headers arrived."""

    failure = FailureKind.RESET_BEFORE_HEADERS


class GoawayReceived(UpstreamError):
    """The peer sent GOAWAY with a last stream id below this stream: it was not processed,
    so retrying (on a new connection) is safe whatever the method."""

    failure = FailureKind.GOAWAY


class RefusedStream(GoawayReceived):
    """The upstream reset the stream with REFUSED_STREAM before headers: not processed."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (response headers) within the per-try timeout."""

    failure = FailureKind.PER_TRY_TIMEOUT


class UpstreamStreamBroken(UpstreamError):
    """The stream broke after response headers (reset mid-body, connection lost): the body
    is truncated. Not retryable, since part of the response may already be forwarded."""

    failure = None


class TunnelRefused(UpstreamError):
    """The peer gateway answered an HTTP/2 CONNECT with a non-2xx ``status``. A 503 (the
    peer has no healthy target) is retryable elsewhere; anything else is not."""

    def __init__(self, message: str, *, endpoint: str = "", status: int) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status
        self.failure = FailureKind.PEER_503 if status == 503 else None
