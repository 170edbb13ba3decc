"""Direct socket I/O for bulk streams: cancellable, fair to other tasks, trio's error types."""

from __future__ import annotations

import socket

import pytest
import trio

from proxy.tls.sockio import YIELD_EVERY, SocketIO


def _pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    a, b = socket.socketpair()
    return trio.socket.from_stdlib_socket(a), trio.socket.from_stdlib_socket(b)


async def test_moves_bytes_and_waits_when_nothing_is_there() -> None:
    a, b = _pair()
    with a, b:
        writer, reader = SocketIO(a), SocketIO(b)
        view = memoryview(bytearray(1 << 16))
        got: list[bytes] = []

        async def read_once() -> None:
            n = await reader.recv_into(view)
            got.append(bytes(view[:n]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_once)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # blocked in wait_readable, not spinning
            await writer.send_all(b"hello")
        assert got == [b"hello"]


async def test_a_busy_reader_still_lets_other_tasks_run() -> None:
    a, b = _pair()
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        await SocketIO(a).send_all(b"x" * (4 * YIELD_EVERY))
        reader = SocketIO(b)
        view = memoryview(bytearray(1))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            before = ticks
            for _ in range(4 * YIELD_EVERY):  # every read finds data at once
                assert await reader.recv_into(view) == 1
            assert ticks - before >= 3
            nursery.cancel_scope.cancel()


async def test_a_cancelled_scope_stops_reads_even_with_data_waiting() -> None:
    a, b = _pair()
    with a, b:
        await SocketIO(a).send_all(b"data")
        with trio.CancelScope() as scope:
            scope.cancel()
            await SocketIO(b).recv_into(memoryview(bytearray(16)))
        assert scope.cancelled_caught


async def test_errors_follow_trio_stream_conventions() -> None:
    a, b = _pair()
    with b:
        io = SocketIO(a)
        a.close()
        with pytest.raises(trio.ClosedResourceError):
            await io.send_all(b"after close")
    c, d = _pair()
    with c:
        d.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        d.close()  # the peer goes away
        with pytest.raises(trio.BrokenResourceError):
            for _ in range(8):  # the first send may still be accepted by the kernel
                await SocketIO(c).send_all(b"x" * 65536)
