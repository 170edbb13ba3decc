"""Prometheus metrics with istio-like names, one registry per gateway.

The registry is private to a gateway (not prometheus_client's global one) so several gateways
can run in one process (tests, ``isthmus up``). Names and labels (docs/gateway.md, "Metrics"):

- ``isthmus_requests_total{source_cluster,destination_cluster,destination_service,response_code}``
- ``isthmus_request_duration_seconds{source_cluster,destination_cluster,destination_service}``
- ``isthmus_upstream_connections{destination_cluster,kind}`` (gauge, open connections)
- ``isthmus_outlier_ejections_total{destination_cluster,endpoint}``
- ``isthmus_retries_total{destination_service,reason}``
- ``isthmus_retry_budget_exhausted_total{destination_service}``
- ``isthmus_tunnel_bytes_total{destination_service,direction}``
- ``isthmus_peer_healthy{peer_cluster}`` (gauge, active /readyz probe result)
- ``isthmus_svid_expiry_timestamp_seconds``
- ``isthmus_routing_table_version`` and ``isthmus_config_reloads_total{result}``
- ``isthmus_federation_snapshot_version`` (active snapshot), ``isthmus_federation_snapshot_refused``
  (1 while the latest version seen was NACKed), ``isthmus_federation_watch_failures``
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


_BOUNDS = (*DURATION_BUCKETS, float("inf"))
RequestKey = tuple[str, str, str, int]


class _Pending:
    """Requests of one label tuple counted since the last scrape."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(_BOUNDS)


class _FlushFirst:
    """Registered before every family: a scrape (``collect``) first moves the per-request
    counts into the prometheus_client children, so what is exported never lags."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        self._metrics.flush()
        return []


class GatewayMetrics:
    """The gateway's metric families on their own :attr:`registry`.

    Requests are counted per label tuple in plain ints and floats on the request path
    (:meth:`record_request`, ~0.5 µs) and handed to prometheus_client's children when the
    registry is collected (each ``labels()`` + ``inc()`` + ``observe()`` took 2-3 µs per
    request). Single-threaded: the admin server scrapes on the gateway's trio thread."""

    def __init__(self) -> None:
        self._pending: dict[RequestKey, _Pending] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        reg.register(_FlushFirst(self))  # first, so a scrape flushes before collecting
        self.requests = Counter(
            "isthmus_requests",
            "Requests handled, by source and destination and response code.",
            ["source_cluster", "destination_cluster", "destination_service", "response_code"],
            registry=reg,
        )
        self.duration = Histogram(
            "isthmus_request_duration_seconds",
            "Time from request headers to the end of the response.",
            ["source_cluster", "destination_cluster", "destination_service"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.upstream_connections = Gauge(
            "isthmus_upstream_connections",
            "Open upstream connections.",
            ["destination_cluster", "kind"],
            registry=reg,
        )
        self.ejections = Counter(
            "isthmus_outlier_ejections",
            "Endpoints ejected by outlier detection.",
            ["destination_cluster", "endpoint"],
            registry=reg,
        )
        self.retries = Counter(
            "isthmus_retries",
            "Retried attempts, by why the previous attempt failed.",
            ["destination_service", "reason"],
            registry=reg,
        )
        self.retry_budget_exhausted = Counter(
            "isthmus_retry_budget_exhausted",
            "Retries not attempted because the retry budget was spent.",
            ["destination_service"],
            registry=reg,
        )
        self.tunnel_bytes = Counter(
            "isthmus_tunnel_bytes",
            "Bytes carried by CONNECT tunnels (upstream = towards the service).",
            ["destination_service", "direction"],
            registry=reg,
        )
        self.peer_healthy = Gauge(
            "isthmus_peer_healthy",
            "1 when the peer gateway's /readyz answered 200 at the last probe.",
            ["peer_cluster"],
            registry=reg,
        )
        self.svid_expiry = Gauge(
            "isthmus_svid_expiry_timestamp_seconds",
            "When the gateway's current X.509-SVID expires (Unix time): alert well before it.",
            registry=reg,
        )
        self.table_version = Gauge(
            "isthmus_routing_table_version", "Version of the active routing table.", registry=reg
        )
        self.federation_version = Gauge(
            "isthmus_federation_snapshot_version",
            "Version of the federation snapshot in use (federated gateways).",
            registry=reg,
        )
        self.federation_refused = Gauge(
            "isthmus_federation_snapshot_refused",
            "1 while the newest snapshot version seen was refused (NACKed), else 0.",
            registry=reg,
        )
        self.federation_failures = Gauge(
            "isthmus_federation_watch_failures",
            "Snapshot watch attempts that failed (federation unreachable or refusing).",
            registry=reg,
        )
        self.reloads = Counter(
            "isthmus_config_reloads", "Routing-file reloads, by result.", ["result"], registry=reg
        )

    def record_request(
        self,
        source_cluster: str,
        destination_cluster: str,
        service: str,
        status: int,
        duration_s: float,
    ) -> None:
        """Count one finished request and observe its duration (exported at the next
        scrape, see the class docstring)."""
        key = (source_cluster, destination_cluster, service, status)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        pending.count += 1
        pending.total += duration_s
        pending.buckets[bisect_left(_BOUNDS, duration_s)] += 1  # first bound >= duration

    def flush(self) -> None:
        """Move the counts gathered since the last flush into the metric families."""
        pending, self._pending = self._pending, {}
        for (source, destination, service, status), counts in pending.items():
            self.requests.labels(source, destination, service, str(status)).inc(counts.count)
            histogram = self.duration.labels(source, destination, service)
            # Histogram.observe() takes one value; its children hold a sum and one counter
            # per bucket (prometheus_client >= 0.20, checked by tests/unit/gateway).
            histogram._sum.inc(counts.total)
            for index, count in enumerate(counts.buckets):
                if count:
                    histogram._buckets[index].inc(count)
