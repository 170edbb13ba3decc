"""The proxy engine's observer: Prometheus metrics and the JSON access log.

Called inline on the request path by :class:`proxy.engine.ForwardingEngine`: every method is
quick and never raises (a logging failure must not fail a request).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from gateway.load import ServiceLoadTracker
from gateway.metrics import GatewayMetrics
from proxy.engine.observer import RequestRecord, TunnelRecord, UpstreamEvent

ACCESS_LOGGER = "isthmus.access"
log = logging.getLogger(__name__)


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def access_line(record: RequestRecord) -> str:
    """One access-log line (JSON object, no newline); fields documented in docs/gateway.md.
    ``source_identity`` is the SPIFFE ID the inbound peer proved (``null`` outbound)."""
    return json.dumps(
        {
            "time": _iso(record.time),
            "listener": record.listener,
            "source": record.remote,
            "source_identity": record.source_identity,
            "source_cluster": record.source_cluster,
            "method": record.method,
            "authority": record.authority,
            "service": record.service or None,
            "path": record.path,
            "cluster": record.destination_cluster or None,
            "endpoint": record.endpoint or None,
            "status": record.status,
            "duration_ms": round(record.duration_s * 1000.0, 3),
            "retries": record.retries,
            "reason": record.reason or None,
            "bytes_received": record.bytes_received,
            "bytes_sent": record.bytes_sent,
            "trace_id": record.trace_id or None,
        },
        separators=(",", ":"),
    )


def tunnel_line(record: TunnelRecord) -> str:
    """One access-log line for a finished CONNECT tunnel."""
    return json.dumps(
        {
            "time": _iso(record.time),
            "listener": record.listener,
            "source_identity": record.source_identity,
            "source_cluster": record.source_cluster,
            "method": "CONNECT",
            "service": record.service or None,
            "target": record.target,
            "cluster": record.destination_cluster or None,
            "endpoint": record.endpoint or None,
            "status": record.status,
            "duration_ms": round(record.duration_s * 1000.0, 3),
            "reason": record.reason or None,
            "bytes_up": record.bytes_up,
            "bytes_down": record.bytes_down,
        },
        separators=(",", ":"),
    )


class GatewayObserver:
    """Implements :class:`proxy.engine.observer.Observer` for one gateway."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        access_log: bool,
        logger: logging.Logger | None = None,
        probe_authority: str = "isthmus-gateway",
        load: ServiceLoadTracker | None = None,
        links: ServiceLoadTracker | None = None,
        own_cluster: str = "",
    ) -> None:
        self._metrics = metrics
        self.load = load if load is not None else ServiceLoadTracker()
        #: Outbound traffic by ``"<destination cluster>/<service>"`` (report ``links``).
        self.links = links if links is not None else ServiceLoadTracker()
        self._own_cluster = own_cluster
        self._probe_authority = probe_authority
        self._access = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)
        self._enabled = access_log

    def on_request_done(self, record: RequestRecord) -> None:
        if record.listener == "inbound" and record.authority == self._probe_authority:
            return  # peers' once-a-second /readyz probes are not traffic
        try:
            service, destination = record.service, record.destination_cluster
            status, duration = record.status, record.duration_s
            self._metrics.record_request(  # positional: once per request
                record.source_cluster, destination or "none", service or "unknown", status, duration
            )
            if service and destination == self._own_cluster:
                self.load.record(service, status, duration)
            elif record.listener == "outbound" and service and destination:
                self.links.record(f"{destination}/{service}", status, duration)
            if self._enabled and self._access.isEnabledFor(logging.INFO):
                self._access.info(access_line(record))
        except Exception:  # never fail a request because of telemetry
            log.exception("observer failed for a request record")

    def on_tunnel_done(self, record: TunnelRecord) -> None:
        try:
            service = record.service or "unknown"
            self._metrics.tunnel_bytes.labels(service, "upstream").inc(record.bytes_up)
            self._metrics.tunnel_bytes.labels(service, "downstream").inc(record.bytes_down)
            self._metrics.record_request(
                source_cluster=record.source_cluster,
                destination_cluster=record.destination_cluster or "none",
                service=service,
                status=record.status,
                duration_s=record.duration_s,
            )
            if self._enabled and self._access.isEnabledFor(logging.INFO):
                self._access.info(tunnel_line(record))
        except Exception:
            log.exception("observer failed for a tunnel record")

    def on_upstream_event(self, event: UpstreamEvent) -> None:
        try:
            if event.kind == "ejected":
                self._metrics.ejections.labels(event.cluster, event.endpoint).inc()
                log.warning(
                    "ejected %s (%s) for service %s: %s",
                    event.endpoint,
                    event.cluster,
                    event.service,
                    event.detail,
                )
            elif event.kind in ("healthy", "unhealthy"):
                log.warning("peer gateway %s (%s) is %s", event.endpoint, event.cluster, event.kind)
            elif event.kind == "unejected":
                log.info("un-ejected %s for service %s", event.endpoint, event.service)
            elif event.kind == "retry":
                self._metrics.retries.labels(event.service, event.detail or "unknown").inc()
            elif event.kind == "budget_exhausted":
                self._metrics.retry_budget_exhausted.labels(event.service).inc()
        except Exception:
            log.exception("observer failed for an upstream event")
