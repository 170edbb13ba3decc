"""The stale check of idle HTTP/1.1 connections: one system call per scheduler batch.

A kept-alive connection is checked before it is reused: readable while idle means the
backend closed it or spoke out of turn (an unsolicited ``408`` on its idle timeout), and a
request sent on it would fail or be answered by those bytes. Polling the socket alone cost a
``poll`` per request (3-4 % of an inbound gateway's CPU at a fixed 2,000 req/s). Here every
plain-TCP connection of a pool sits in one level-triggered ``epoll`` set from the moment it
opens (the kernel drops a socket from the set when it is closed), and one ``epoll_wait``
without waiting answers for all the pool's idle connections at once; that answer serves the
whole scheduler batch, i.e. until trio next polls for I/O.

Validity: the answer describes the connections that were idle when it was taken. One parked
later in the same batch (it just finished an exchange) is polled alone, as before. What
arrives after the answer, within the batch, is missed as it was when it arrived between a
per-request poll and the request: the race that a closed connection's reset-and-retry path
covers (a body-less request is retried on a fresh connection); the window grows from
microseconds to one batch.
"""

from __future__ import annotations

import select

from proxy.batchend import batch_end

AVAILABLE = hasattr(select, "epoll")  # Linux; elsewhere each connection is polled alone


class IdleProbe:
    """The ``epoll`` set of one pool's connections and its answer for the current batch.

    Create it inside ``trio.run`` and only where :data:`AVAILABLE`; :meth:`close` it with
    the pool (or leave it to the garbage collector)."""

    __slots__ = ("_batch", "_batches", "_complete", "_epoll", "_ready")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._batches = batch_end()
        self._batch = -1  # the batch of the last answer
        self._ready: set[int] = set()
        self._complete = False  # the answer lists every readable socket of the set

    @property
    def batch(self) -> int:
        """The current batch (a connection parked now records it: see :meth:`readable`)."""
        return self._batches.batch

    def add(self, fd: int) -> bool:
        """Put a newly opened connection's socket in the set; False if it could not be
        (that connection is then polled alone)."""
        try:  # EPOLLHUP and EPOLLERR are always reported
            self._epoll.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        except (OSError, ValueError):
            return False
        return True

    def readable(self, fd: int, parked_batch: int, connections: int) -> bool | None:
        """Whether the idle socket ``fd`` (in the set, parked in batch ``parked_batch``)
        is readable, hung up or failed, by this batch's answer (taken now if this batch has
        none; ``connections``: how many sockets the set may hold). ``None``: the answer does
        not tell (the connection was parked after it, or more sockets were ready than it
        could list): poll the socket alone."""
        batch = self._batches.batch
        if parked_batch == batch:
            return None
        if self._batch != batch:
            limit = connections + 1
            try:
                events = self._epoll.poll(0, limit)
            except (OSError, ValueError):  # closed with the pool
                return None
            self._batch = batch
            self._ready = {ready for ready, _ in events}
            self._complete = len(events) < limit
        if fd in self._ready:
            return True
        return False if self._complete else None

    def close(self) -> None:
        self._epoll.close()
