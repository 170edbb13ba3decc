"""Routing-file reloads under continuous traffic: no failed request, traffic follows the new
table, a broken file keeps the old one (and says why in /config)."""

import logging
from pathlib import Path

import httpx
import pytest
import trio

from federation.model import PriorityLevel, RoutingModel, load_model_file
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
