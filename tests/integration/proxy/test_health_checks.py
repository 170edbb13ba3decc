"""Active /readyz probes of peer gateways over the mTLS connection."""

from __future__ import annotations

import httpx

from proxy.engine import check_once
from tests.integration.proxy.certs import CA, Leaf
from tests.integration.proxy.harness import FAST_RETRY, route, table
from tests.integration.proxy.peers import gateway_pair, peer_endpoint

PKI = tuple[CA, Leaf, Leaf]


async def test_a_peer_that_stops_being_ready_is_marked_unhealthy_then_recovers(pki: PKI) -> None:
    routes_a = [route("web.shop", (peer_endpoint(0),), retry=FAST_RETRY)]
    async with gateway_pair(pki, routes_a, table(cluster="b")) as pair:
        engine_a = pair.a.engine
        await check_once(engine_a)
        assert engine_a.state.health.is_healthy("gw-b")
        pair.b.engine.ready = False
        await check_once(engine_a)
        await check_once(engine_a)
        assert not engine_a.state.health.is_healthy("gw-b")
        async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{pair.a.port}") as client:
            # Panic mode: with every endpoint unhealthy the LB still tries them all, and B,
            # which has no such route, answers 404 itself.
            response = await client.get("http://web.shop.global/")
        assert response.status_code == 404
        pair.b.engine.ready = True
        await check_once(engine_a)
        assert engine_a.state.health.is_healthy("gw-b")
    kinds = [e.kind for e in pair.a.observer.events if e.endpoint == "gw-b"]
    assert kinds[:2] == ["unhealthy", "healthy"]
