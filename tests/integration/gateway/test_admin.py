import json

import httpx
import trio

from gateway.admin import AdminApp, bind_admin_socket, serve_admin
from gateway.metrics import GatewayMetrics
from gateway.status import GatewayStatus
from proxy.routes import Route, RoutingTable


async def test_admin_answers_health_readiness_metrics_and_config() -> None:
    status = GatewayStatus(cluster="aws-use1")
    metrics = GatewayMetrics()
    sock = bind_admin_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_admin, AdminApp(status, metrics.registry), sock, shutdown)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            assert "listeners" in not_ready.text
            status.listeners_up = True
            status.table = RoutingTable(
                version=4,
                local_cluster="aws-use1",
                routes={"catalog.shop": Route("catalog.shop", allowed_sources=frozenset({"*"}))},
            )
            assert (await client.get("/readyz")).status_code == 200
            metrics.record_request(
                source_cluster="aws-use1",
                destination_cluster="gcp-euw1",
                service="catalog.shop",
                status=200,
                duration_s=0.01,
            )
            text = (await client.get("/metrics")).text
            assert (
                'isthmus_requests_total{destination_cluster="gcp-euw1",destination_service='
                '"catalog.shop",response_code="200",source_cluster="aws-use1"} 1.0' in text
            )
            doc = json.loads((await client.get("/config")).text)
            assert doc["table"]["version"] == 4
            assert doc["table"]["routes"]["catalog.shop"]["allowed_sources"] == ["*"]
            assert (await client.post("/config")).status_code == 405
            assert (await client.get("/nope")).status_code == 404
        shutdown.set()
