"""The tunnel byte pump: both directions at once, big reusable buffers, half-close aware."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from proxy.tls.stream import TLSStream

PUMP_BUFFER = 256 * 1024


@dataclass(slots=True)
class PumpCounts:
    """Bytes moved so far (readable while the pump runs)."""

    up: int = 0
    down: int = 0


async def _receive_into(stream: trio.abc.ReceiveStream, view: memoryview) -> int:
    """Read into ``view`` without allocating when the stream allows it."""
    if isinstance(stream, TLSStream):
        return await stream.receive_into(view)
    if isinstance(stream, trio.SocketStream):
        try:
            return await stream.socket.recv_into(view)
        except OSError as err:
            raise trio.BrokenResourceError(str(err)) from err
    data = await stream.receive_some(len(view))
    view[: len(data)] = data
    return len(data)


async def _one_way(
    source: trio.abc.HalfCloseableStream,
    sink: trio.abc.HalfCloseableStream,
    counts: PumpCounts,
    upward: bool,
    buffer_size: int,
) -> None:
    buffer = bytearray(buffer_size)
    view = memoryview(buffer)
    while True:
        n = await _receive_into(source, view)
        if n == 0:
            break
        await sink.send_all(view[:n])
        if upward:
            counts.up += n
        else:
            counts.down += n
    await sink.send_eof()


async def pump(
    client: trio.abc.HalfCloseableStream,
    upstream: trio.abc.HalfCloseableStream,
    counts: PumpCounts | None = None,
    *,
    buffer_size: int = PUMP_BUFFER,
) -> PumpCounts:
    """Copy bytes both ways until both sides finished sending (EOF is forwarded as
    ``send_eof``). A broken side ends the whole tunnel (raises ``trio.BrokenResourceError``).
    Neither stream is closed here: their owners close them."""
    counts = counts if counts is not None else PumpCounts()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_one_way, client, upstream, counts, True, buffer_size)
        nursery.start_soon(_one_way, upstream, client, counts, False, buffer_size)
    return counts
