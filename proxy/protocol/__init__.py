"""Sans-IO protocol sessions: HTTP/1.1 (h11) and HTTP/2 (h2) as one event vocabulary."""

from proxy.protocol.events import (
    ConnectionTerminated,
    DataReceived,
    EndOfStream,
    Event,
    Headers,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from proxy.protocol.h1session import H1ServerSession
from proxy.protocol.h2session import H2ServerSession, H2SessionSettings

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

__all__ = [
    "H2_PREFACE",
    "ConnectionTerminated",
    "DataReceived",
    "EndOfStream",
    "Event",
    "H1ServerSession",
    "H2ServerSession",
    "H2SessionSettings",
    "Headers",
    "RequestReceived",
    "StreamReset",
    "WindowUpdated",
]
