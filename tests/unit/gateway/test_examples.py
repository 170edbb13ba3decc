from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.reload import load_routing_model
from gateway.translate import translate_model

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "two-clusters"


@pytest.mark.parametrize("cluster", ["east", "west"])
def test_bundled_example_configs_validate(cluster: str) -> None:
    config = GatewayConfig.from_file(EXAMPLE / cluster / "gateway.yaml")
    assert config.cluster == cluster
    assert set(config.identity.bundles) == {"east.isthmus.local", "west.isthmus.local"}
    table = translate_model(load_routing_model(config))
    assert set(table.routes) == {"catalog.shop", "checkout.shop"}
    other = "west" if cluster == "east" else "east"
    remote = next(r for r in table.routes.values() if r.priorities[0].endpoints[0].kind == "peer")
    assert remote.priorities[0].endpoints[0].locality.cluster == other
