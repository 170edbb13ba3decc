"""A listener stream's release gives the client credit for body bytes nobody read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from proxy.listeners.h2exchange import H2Exchange
from proxy.protocol.events import RequestReceived


@dataclass
class _Session:
    acks: list[tuple[int, int]] = field(default_factory=list)

    def acknowledge_received_data(self, stream_id: int, flow: int) -> None:
        self.acks.append((stream_id, flow))


@dataclass
class _Conn:
    session: _Session = field(default_factory=_Session)
    downstream: object = None


def _exchange(conn: _Conn) -> H2Exchange:
    head = RequestReceived(3, b"POST", b"http", b"a.b", b"/", [], False)
    return H2Exchange(cast(Any, conn), head)


def test_unread_body_bytes_are_credited_once_on_release() -> None:
    conn = _Conn()
    ex = _exchange(conn)
    ex.on_data(b"abc", 3)
    ex.on_data(b"", 7)  # all padding: credit without bytes
    ex.release()
    ex.release()
    assert conn.session.acks == [(3, 10)]
    assert not ex.data_queued


def test_a_release_with_everything_read_credits_nothing() -> None:
    conn = _Conn()
    ex = _exchange(conn)
    ex.release()
    ex.on_data(b"", 0)
    ex.release()
    assert conn.session.acks == []
