"""Coalesced connection output leaves at the end of the scheduler batch that queued it (a
bounded number of batches later while the loop stays busy), in order, even when the kernel
takes only part of it (the writer task finishes the rest)."""

from __future__ import annotations

import socket

import trio

from proxy.batchend import HOLD_BATCHES, NEVER_WRITTEN, batch_end
from proxy.listeners.writer import DeferredWriter


def _stream_pair() -> tuple[trio.SocketStream, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    return trio.SocketStream(trio.socket.from_stdlib_socket(ours)), theirs


def _read_available(sock: socket.socket) -> bytes:
    parts = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(parts)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


async def test_output_queued_in_a_batch_leaves_before_the_loop_waits_without_the_writer() -> None:
    stream, peer = _stream_pair()
    queued: list[bytes] = []

    def pull() -> bytes:
        data = b"".join(queued)
        queued.clear()
        return data

    with peer:
        writer = DeferredWriter(stream, pull, "test")  # its writer task is never started
        for part in (b"HEADERS ", b"DATA ", b"END"):
            queued.append(part)
            writer.schedule()  # one write for the whole batch's output
        assert _read_available(peer) == b""  # nothing written before the batch ends
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(peer)  # the loop goes idle: the batch's write
        assert _read_available(peer) == b"HEADERS DATA END"
        await stream.aclose()


async def test_a_busy_loop_holds_a_recently_written_connection_a_bounded_number_of_batches() -> (
    None
):
    stream, peer = _stream_pair()
    queued = [b"first"]

    def pull() -> bytes:
        data = b"".join(queued)
        queued.clear()
        return data

    with peer:
        writer = DeferredWriter(stream, pull, "test")
        writer.schedule()
        await trio.lowlevel.cancel_shielded_checkpoint()  # busy (this task), but quiet till now
        assert _read_available(peer) == b"first"
        queued.append(b"second")
        writer.schedule()
        for _ in range(HOLD_BATCHES):
            await trio.lowlevel.cancel_shielded_checkpoint()  # this task keeps the loop busy
        assert _read_available(peer) == b""  # held: more output could join it
        await trio.lowlevel.cancel_shielded_checkpoint()
        assert _read_available(peer) == b"second"
        await stream.aclose()


async def test_what_the_kernel_does_not_take_is_finished_by_the_writer_in_order() -> None:
    stream, peer = _stream_pair()
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = bytes(range(256)) * 4096  # 1 MiB: far more than the send buffer
    queued = [payload]

    def pull() -> bytes:
        data = b"".join(queued)
        queued.clear()
        return data

    received = bytearray()
    with peer:
        async with trio.open_nursery() as nursery:
            writer = DeferredWriter(stream, pull, "test")
            nursery.start_soon(writer.run)
            writer.schedule()
            await trio.lowlevel.cancel_shielded_checkpoint()  # partly written, rest carried
            queued.append(b"after")  # queued later: must not overtake the carried rest
            writer.schedule()
            with trio.fail_after(10):
                while len(received) < len(payload) + 5:
                    await trio.lowlevel.wait_readable(peer)
                    received += _read_available(peer)
            nursery.cancel_scope.cancel()
        await stream.aclose()
    assert bytes(received) == payload + b"after"


async def test_a_writer_task_woken_at_the_batch_end_runs_before_the_loop_sleeps() -> None:
    """A ``write_pending`` that hands its output to a writer task (an Event set) while the
    loop is about to sleep: trio computed that sleep's timeout before the hook ran, so without
    a nudge the task waited for unrelated I/O or the next deadline (an h2c upstream's HEADERS
    then left up to 0.2-1 s late under load)."""
    woken = trio.Event()

    class _HandsToItsTask:
        last_write_batch = NEVER_WRITTEN

        def write_pending(self) -> bool:
            woken.set()
            return True

    async def queue_output_then_stop() -> None:
        await trio.sleep(0.01)
        batch_end().add(_HandsToItsTask())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue_output_then_stop)
        with trio.move_on_after(2):  # the only deadline: the bug slept until here
            await woken.wait()
    assert woken.is_set()
    assert trio.current_time() - start < 0.5
