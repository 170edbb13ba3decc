"""One admin API for N worker processes (``--workers N``): the supervisor serves
``admin_port`` itself and asks the workers (``admin_port + 1 + k``) on every request.

- ``/healthz``: 200 while the supervisor runs;
- ``/readyz``: 200 when every worker is ready, else 503 naming the ones that are not;
- ``/metrics``: the workers' metrics merged — counters and histograms summed per label set;
  gauges summed too, except the ones that are a per-gateway fact (table version, SVID expiry,
  peer health), where the minimum is the honest answer;
- ``/config``: worker 0's, plus ``workers``.

Merging is pure (:func:`merge_metrics`); the fetching is the ASGI app's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from gateway.admin import Receive, Scope, Send

MIN_GAUGES = frozenset(
    {
        "isthmus_routing_table_version",
        "isthmus_svid_expiry_timestamp_seconds",
        "isthmus_peer_healthy",
    }
)
FETCH_TIMEOUT_S = 2.0


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        '{}="{}"'.format(k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


def merge_metrics(texts: Sequence[str]) -> str:
    """Merge Prometheus text expositions of identical registries into one exposition."""
    kinds: dict[str, tuple[str, str]] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = defaultdict(dict)
    for text in texts:
        for family in text_string_to_metric_families(text):
            kinds.setdefault(family.name, (family.type, family.documentation))
            merged = values[family.name]
            take_min = family.name in MIN_GAUGES
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # creation timestamps do not add up
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in merged:
                    merged[key] = sample.value
                elif take_min:
                    merged[key] = min(merged[key], sample.value)
                else:
                    merged[key] += sample.value
    lines = []
    for name, (kind, doc) in kinds.items():
        shown = f"{name}_total" if kind == "counter" else name
        lines.append(f"# HELP {shown} {doc}")
        lines.append(f"# TYPE {shown} {kind}")
        for (sample_name, labels), value in values[name].items():
            lines.append(f"{sample_name}{_labels(dict(labels))} {value!r}")
    return "\n".join(lines) + "\n"


class WorkersAdminApp:
    """ASGI app of the supervisor; ``ports`` are the workers' admin ports on ``host``."""

    def __init__(self, host: str, ports: Sequence[int]) -> None:
        self._urls = [f"http://{host}:{port}" for port in ports]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        status, ctype, body = await self._answer(scope["path"])
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _fetch_all(self, path: str) -> list[httpx.Response | None]:
        results: list[httpx.Response | None] = [None] * len(self._urls)
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:

            async def one(index: int) -> None:
                try:
                    results[index] = await client.get(self._urls[index] + path)
                except httpx.HTTPError:
                    results[index] = None

            async with trio.open_nursery() as nursery:
                for index in range(len(self._urls)):
                    nursery.start_soon(one, index)
        return results

    async def _answer(self, path: str) -> tuple[int, str, bytes]:
        text = "text/plain; charset=utf-8"
        if path == "/healthz":
            return 200, text, b"ok\n"
        if path == "/readyz":
            answers = await self._fetch_all("/readyz")
            down = [str(i) for i, r in enumerate(answers) if r is None or r.status_code != 200]
            if down:
                return 503, text, f"workers not ready: {', '.join(down)}\n".encode()
            return 200, text, b"ready\n"
        if path == "/metrics":
            answers = await self._fetch_all("/metrics")
            merged = merge_metrics([r.text for r in answers if r is not None])
            return 200, "text/plain; version=0.0.4; charset=utf-8", merged.encode()
        if path == "/config":
            (first,) = (await self._fetch_all("/config"))[:1]
            doc: dict[str, Any] = {} if first is None else first.json()
            doc["workers"] = len(self._urls)
            return 200, "application/json", json.dumps(doc, indent=2).encode() + b"\n"
        return 404, text, f"no admin endpoint {path}\n".encode()
