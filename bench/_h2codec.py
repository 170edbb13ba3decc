"""In-memory CPU of the HTTP/2 codec work of one fixed-rate burst (20 requests) on the
benchmark's two-hop path, per request (a development tool, no sockets, no trio):

    .venv/bin/python -m bench._h2codec [--tree DIR] [--repeat 7]

``--tree DIR`` imports ``proxy`` from another source tree (``/work/main``), so two trees can
be compared alternately with the same script. Columns: A's listener receiving h2load's
requests, A's upstream sending them to B (with a new ``traceparent`` each, as the engine
adds), B's inbound listener receiving them (no header validation, as on the authenticated
leg), B answering (``:status``, ``content-length``, 32-byte body), A's upstream receiving
the answers, A's listener answering h2load. Best of ``--repeat`` runs of 400 bursts.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

N = 20
REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"svc.alpha.test"),
    (b"user-agent", b"h2load nghttp2/1.59.0"),
]
RESPONSE = [(b":status", b"200"), (b"content-length", b"32"), (b"content-type", b"text/plain")]
BODY = b"hello from the backend service!\n"
NAMES = ["A lst recv", "A up send", "B lst recv", "B lst send", "A up recv", "A lst send"]


def _pair(core: Any, server_validate: bool) -> tuple[Any, Any]:
    big = {"initial_window_size": 1 << 20, "connection_window_size": 16 << 20}
    client = core(client=True, validate=False, max_frame_size=1 << 20, **big)
    server = core(client=False, validate=server_validate, max_frame_size=1 << 20, **big)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.data_to_send()
    server.data_to_send()
    return client, server


class Burst:
    def __init__(self, core: Any, data_event: type[Any]) -> None:
        self.h2load, self.a_listener = _pair(core, True)
        self.a_upstream, self.b_listener = _pair(core, False)
        self.data_event = data_event
        self.count = 0

    def _to_b(self) -> list[tuple[bytes, bytes]]:
        self.count += 1
        trace = b"00-%032x-%016x-01" % (self.count * 7919, self.count)
        return [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"svc.beta.test"),
            (b":path", b"/"),
            (b"user-agent", b"h2load nghttp2/1.59.0"),
            (b"traceparent", trace),  # in the order proxy.routes.headers.from_local_client adds
            (b"x-forwarded-for", b"127.0.0.1"),
            (b"x-forwarded-proto", b"http"),
            (b"x-isthmus-source-cluster", b"alpha"),
        ]

    def run(self) -> list[float]:
        for _ in range(N):
            self.h2load.send_headers(self.h2load.open_stream(), REQUEST, end_stream=True)
        wire = memoryview(self.h2load.data_to_send())
        clock = time.perf_counter
        t0 = clock()
        requests = self.a_listener.receive_data(wire)
        t1 = clock()
        pairs = []
        for event in requests:
            sid = self.a_upstream.open_stream()
            pairs.append((event.stream_id, sid))
            self.a_upstream.send_headers(sid, self._to_b(), end_stream=True)
        to_b = memoryview(self.a_upstream.data_to_send())
        t2 = clock()
        at_b = self.b_listener.receive_data(to_b)
        t3 = clock()
        for event in at_b:
            self.b_listener.send_headers(event.stream_id, RESPONSE)
            self.b_listener.send_data(event.stream_id, BODY, end_stream=True)
        to_a = memoryview(self.b_listener.data_to_send())
        t4 = clock()
        answers: list[Any] = self.a_upstream.receive_data(to_a)
        t5 = clock()
        for downstream, _ in pairs:
            self.a_listener.send_headers(downstream, RESPONSE)
            self.a_listener.send_data(downstream, BODY, end_stream=True)
        out = self.a_listener.data_to_send()
        t6 = clock()
        self.h2load.receive_data(out)
        for event in answers:
            if isinstance(event, self.data_event):
                self.a_upstream.acknowledge(event.stream_id, event.flow_length)
        return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", help="source tree to import proxy from")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.tree:
        sys.path.insert(0, args.tree)
    from proxy.protocol.events import DataReceived
    from proxy.protocol.h2core import H2Core

    burst = Burst(H2Core, DataReceived)
    for _ in range(300):
        burst.run()
    best = [float("inf")] * len(NAMES)
    for _ in range(args.repeat):
        total = [0.0] * len(NAMES)
        for _ in range(400):
            total = [a + b for a, b in zip(total, burst.run(), strict=True)]
        best = [min(b, t / 400 / N * 1e6) for b, t in zip(best, total, strict=True)]
    cols = "  ".join(f"{name} {value:.2f}" for name, value in zip(NAMES, best, strict=True))
    a = best[0] + best[1] + best[4] + best[5]
    print(f"µs per request: {cols}  | A {a:.2f}  B {best[2] + best[3]:.2f}")


if __name__ == "__main__":
    main()
