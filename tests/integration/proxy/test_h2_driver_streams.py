"""The HTTP/2 listener driver's stream lifecycle over an in-memory transport (MockClock):
request deadlines answer 504 while other streams keep working, a client's RST_STREAM cancels
its handler, and worker tasks are reused across requests."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing

from proxy.listeners import Downstream, Exchange, ListenerLimits
from proxy.listeners.h2driver import H2Connection
from proxy.listeners.limits import DrainSignal

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.b")]


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Handler:
    """``/hang`` waits forever (until cancelled), ``/slow`` 1 s; anything else answers 200
    at once."""

    def __init__(self) -> None:
        self.cancelled: list[bytes] = []
        self.tasks: set[object] = set()

    async def handle(self, exchange: Exchange) -> None:
        self.tasks.add(trio.lowlevel.current_task())
        if exchange.path.startswith(b"/hang"):
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                self.cancelled.append(exchange.path)
                raise
        if exchange.path == b"/slow":
            await trio.sleep(1)
        await exchange.start_response(200, [(b"content-length", b"2")])
        await exchange.send_data(b"ok", end_stream=True)


class Client:
    """An h2 client on one end of an in-memory stream, the driver on the other."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.h2.initiate_connection()
        self.events: list[h2.events.Event] = []

    async def send(self) -> None:
        await self.stream.send_all(self.h2.data_to_send())

    async def read_until(self, done: object) -> None:
        with trio.fail_after(60):
            while not done(self.events):  # type: ignore[operator]
                data = await self.stream.receive_some(65536)
                assert data, "the driver closed the connection"
                self.events.extend(self.h2.receive_data(data))
                if out := self.h2.data_to_send():
                    await self.stream.send_all(out)

    def status(self, stream_id: int) -> bytes | None:
        for ev in self.events:
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream_id:
                return dict(ev.headers)[b":status"]
        return None


async def _serve(handler: Handler, limits: ListenerLimits, nursery: trio.Nursery) -> Client:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = H2Connection(ours, handler, Downstream("outbound", "test:1"), limits, DrainSignal())
    nursery.start_soon(conn.serve)
    return Client(theirs)


async def test_a_request_past_its_deadline_gets_504_while_others_are_answered(
    clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, ListenerLimits(request_timeout_s=5.0), nursery)
        client.h2.send_headers(1, [*REQUEST, (b":path", b"/hang")], end_stream=True)
        await client.send()
        await trio.sleep(1)
        client.h2.send_headers(3, [*REQUEST, (b":path", b"/fast")], end_stream=True)
        await client.send()
        await client.read_until(lambda _: client.status(3) is not None)
        assert client.status(3) == b"200" and client.status(1) is None
        start = trio.current_time()
        await client.read_until(lambda _: client.status(1) is not None)
        assert client.status(1) == b"504"
        assert 3.9 <= trio.current_time() - start <= 4.1  # 5 s after it arrived
        assert handler.cancelled == [b"/hang"]
        nursery.cancel_scope.cancel()


async def test_a_client_reset_cancels_the_handler_at_once(clock: trio.testing.MockClock) -> None:
    handler = Handler()
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, ListenerLimits(request_timeout_s=60.0), nursery)
        client.h2.send_headers(1, [*REQUEST, (b":path", b"/hang")], end_stream=True)
        await client.send()
        await trio.sleep(1)
        client.h2.reset_stream(1)
        client.h2.send_headers(3, [*REQUEST, (b":path", b"/fast")], end_stream=True)
        start = trio.current_time()
        await client.send()
        await client.read_until(lambda _: client.status(3) is not None)
        assert handler.cancelled == [b"/hang"]
        assert trio.current_time() - start < 1
        nursery.cancel_scope.cancel()


async def test_sequential_requests_reuse_one_worker_task(clock: trio.testing.MockClock) -> None:
    handler = Handler()
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, ListenerLimits(request_timeout_s=1.0), nursery)
        for n in range(20):
            sid = 1 + 2 * n
            client.h2.send_headers(sid, [*REQUEST, (b":path", b"/fast")], end_stream=True)
            await client.send()
            await client.read_until(lambda _, sid=sid: client.status(sid) is not None)
        await trio.sleep(5)  # every deadline passes; none of the finished requests is hurt
        assert len(handler.tasks) == 1
        assert [client.status(1 + 2 * n) for n in range(20)] == [b"200"] * 20
        nursery.cancel_scope.cancel()


async def test_workers_serve_on_after_timeouts_and_resets(
    clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, ListenerLimits(request_timeout_s=5.0), nursery)
        client.h2.send_headers(1, [*REQUEST, (b":path", b"/hang1")], end_stream=True)
        await client.send()
        await client.read_until(lambda _: client.status(1) is not None)
        assert client.status(1) == b"504"
        client.h2.send_headers(3, [*REQUEST, (b":path", b"/hang2")], end_stream=True)
        await client.send()
        await trio.sleep(1)
        client.h2.reset_stream(3)
        await client.send()
        await trio.sleep(1)
        for sid in (5, 7):  # the worker that ran the cancelled ones serves on
            client.h2.send_headers(sid, [*REQUEST, (b":path", b"/fast")], end_stream=True)
            await client.send()
            await client.read_until(lambda _, sid=sid: client.status(sid) is not None)
        client.h2.send_headers(9, [*REQUEST, (b":path", b"/hang3")], end_stream=True)
        await client.send()
        await trio.sleep(1)
        client.h2.send_headers(11, [*REQUEST, (b":path", b"/fast")], end_stream=True)
        await client.send()
        await client.read_until(lambda _: client.status(11) is not None)
        assert [client.status(s) for s in (5, 7, 11)] == [b"200"] * 3
        assert client.status(9) is None  # still waiting for its deadline
        await client.read_until(lambda _: client.status(9) is not None)
        assert client.status(9) == b"504"
        assert handler.cancelled == [b"/hang1", b"/hang2", b"/hang3"]
        nursery.cancel_scope.cancel()


async def test_workers_of_a_burst_are_kept_for_the_next_one(
    clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, ListenerLimits(request_timeout_s=5.0), nursery)
        for burst in range(3):
            sids = [1 + 2 * (40 * burst + n) for n in range(40)]
            for sid in sids:
                client.h2.send_headers(sid, [*REQUEST, (b":path", b"/slow")], end_stream=True)
            await client.send()
            await client.read_until(lambda _, s=sids: all(client.status(i) for i in s))
        assert len(handler.tasks) == 40  # not 40 + 2 * 24: the first burst's 40 served on
        nursery.cancel_scope.cancel()


async def test_the_idle_timeout_counts_from_the_last_stream_and_spares_active_ones(
    clock: trio.testing.MockClock,
) -> None:
    """A stream that runs longer than the idle timeout is not cut; the connection closes
    ``idle_timeout_s`` after its last stream ended (a GOAWAY then)."""
    handler = Handler()
    limits = ListenerLimits(idle_timeout_s=0.5, request_timeout_s=5.0)
    async with trio.open_nursery() as nursery:
        client = await _serve(handler, limits, nursery)
        client.h2.send_headers(1, [*REQUEST, (b":path", b"/fast")], end_stream=True)
        await client.send()
        await client.read_until(lambda _: client.status(1) is not None)
        await trio.sleep(0.3)  # idle: the timeout runs
        client.h2.send_headers(3, [*REQUEST, (b":path", b"/slow")], end_stream=True)  # 1 s
        await client.send()
        await client.read_until(lambda _: client.status(3) is not None)
        assert client.status(3) == b"200"
        ended = trio.current_time()
        await client.read_until(
            lambda events: any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
        )
        assert 0.45 <= trio.current_time() - ended <= 0.55
        nursery.cancel_scope.cancel()
