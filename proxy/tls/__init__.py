"""The fast TLS stream (``ssl.MemoryBIO`` pump) used by listeners and upstream pools."""

from proxy.tls.stream import DEFAULT_RECEIVE_BUFFER, TLSHandshakeError, TLSStream, open_tls_stream

__all__ = ["DEFAULT_RECEIVE_BUFFER", "TLSHandshakeError", "TLSStream", "open_tls_stream"]
