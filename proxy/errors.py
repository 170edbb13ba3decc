"""Error root of the data-plane engine. Subclasses are named by who failed."""


class ProxyError(Exception):
    """Root of every error raised by :mod:`proxy`."""


class UpstreamError(ProxyError):
    """An upstream (local backend or peer gateway) failed; grouped by cause, httpcore style.

    ``failure`` names the retry condition the request met (``"connect_failure"``,
    ``"reset_before_headers"``, ``"goaway"``, ``"per_try_timeout"``), or ``None`` when the
    failure is not one the retry policy may act on (for example a reset mid-body, after the
    response was already forwarded). ``endpoint`` is the endpoint key.
    """

    failure: str | None = None

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectFailure(UpstreamError):
    """No usable connection: refused, unreachable, TLS handshake failed, or the peer did not
    present its expected identity. Nothing was sent, so retrying elsewhere is always safe."""

    failure = "connect_failure"


class ResetBeforeHeaders(UpstreamError):
    """The stream was reset or the connection lost before response headers arrived."""

    failure = "reset_before_headers"


class GoawayReceived(UpstreamError):
    """The peer sent GOAWAY with a last stream id below this stream: it was not processed,
    so retrying (on a new connection) is safe whatever the method."""

    failure = "goaway"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (response headers) within the per-try timeout."""

    failure = "per_try_timeout"


class UpstreamStreamBroken(UpstreamError):
    """The stream broke after response headers (reset mid-body, connection lost): the body
    is truncated. Not retryable, since part of the response may already be forwarded."""

    failure = None
