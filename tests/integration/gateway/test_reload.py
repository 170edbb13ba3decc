"""Routing-file reloads under continuous traffic: no failed request, traffic follows the new
table, a broken file keeps the old one (and says why in /config)."""

import logging
from pathlib import Path

import httpx
import pytest
import trio

from federation.model import PriorityLevel, RoutingModel, load_model_file
from federation.model.api import Snapshot
from gateway.errors import GatewayConfigError
from isthmus.runner import write_routing_file
from tests.integration.gateway.harness import open_federation
from tests.integration.gateway.test_failover import Traffic, drive, mostly, until


def swap_order(model: RoutingModel, version: int) -> RoutingModel:
    services = tuple(
        svc.model_copy(
            update={
                "priorities": (
                    PriorityLevel(weights={"north": 100}),
                    PriorityLevel(weights={"west": 100}),
                )
            }
        )
        if svc.name == "catalog.shop"
        else svc
        for svc in model.services
    )
    return model.model_copy(update={"version": version, "services": services})


async def test_reload_under_traffic_moves_traffic_without_a_failed_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.reload")
    traffic = Traffic()
    async with open_federation(tmp_path, ("east", "west", "north")) as fed:
        east = fed["east"]
        assert east.gateway is not None
        path = east.gateway.config.routing_file
        model = load_model_file(RoutingModel, path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive, "http://catalog.shop.global/", east.outbound, traffic)
            await until(mostly(traffic, "west", 20), 5, "traffic on west")
            write_routing_file(path, swap_order(model, 2))
            await until(mostly(traffic, "north", 30), 5, "traffic to follow the new table")
            path.write_text(path.read_text() + "surprise: true\n")
            await until(lambda: east.gateway.status.last_reload_error is not None, 5, "rejection")  # type: ignore[union-attr]
            await until(mostly(traffic, "north", 30), 5, "traffic to stay on the old table")
            nursery.cancel_scope.cancel()
        async with httpx.AsyncClient(timeout=5) as admin:
            config = (await admin.get(f"{east.admin}/config")).json()
            metrics = (await admin.get(f"{east.admin}/metrics")).text
    assert traffic.failures == []
    assert config["table"]["version"] == 2
    assert str(path) in config["last_reload_error"]
    assert "surprise" in config["last_reload_error"]
    assert 'isthmus_config_reloads_total{result="rejected"} 1.0' in metrics
    assert "isthmus_routing_table_version 2.0" in metrics
    assert any(str(path) in r.getMessage() for r in caplog.records)


async def test_a_federation_snapshot_is_applied_or_refused_whole(tmp_path: Path) -> None:
    async with open_federation(tmp_path, ("east", "west", "north")) as fed:
        east = fed["east"].gateway
        assert east is not None
        model = load_model_file(RoutingModel, east.config.routing_file)
        bundles = east.identity.bundles
        east.apply_snapshot(Snapshot(version=5, routing=swap_order(model, 5)), bundles)
        async with httpx.AsyncClient(proxy=fed["east"].outbound, timeout=5) as client:
            assert (await client.get("http://catalog.shop.global/")).json()["cluster"] == "north"
        other = model.model_copy(update={"version": 6, "cluster": "south"})
        with pytest.raises(GatewayConfigError, match="cluster"):
            east.apply_snapshot(Snapshot(version=6, routing=other), bundles)
        with pytest.raises(GatewayConfigError, match="older"):
            east.apply_snapshot(
                Snapshot(version=4, routing=model.model_copy(update={"version": 4})), bundles
            )
        assert east.status.table is not None and east.status.table.version == 5
