from pathlib import Path

import pytest

from federation.model import RoutingModel
from gateway.config import GatewayConfig
from gateway.errors import GatewayConfigError
from gateway.reload import RoutingWatcher

ROUTING = """
version: {version}
cluster: east
trust_domain: east.isthmus.local
locality: {{cloud: aws, region: us-east-1}}
services:
  - name: catalog.shop
    local_endpoints: [{{address: "127.0.0.1:8080"}}]
"""


@pytest.fixture
def config(tmp_path: Path) -> GatewayConfig:
    (tmp_path / "routing.yaml").write_text(ROUTING.format(version=1))
    return GatewayConfig.from_mapping(
        {
            "cluster": "east",
            "trust_domain": "east.isthmus.local",
            "locality": {"cloud": "aws", "region": "us-east-1"},
            "routing_file": str(tmp_path / "routing.yaml"),
        }
    )


def test_bad_reload_keeps_the_active_model_and_names_file_and_field(config: GatewayConfig) -> None:
    applied: list[RoutingModel] = []
    watcher = RoutingWatcher(config, applied.append)
    watcher.load_initial()
    config.routing_file.write_text(ROUTING.format(version=2) + "    colour: blue\n")
    assert watcher.changed()
    assert not watcher.reload()
    assert [m.version for m in applied] == [1]
    assert watcher.last_error is not None
    assert str(config.routing_file) in watcher.last_error
    assert "services.0.colour" in watcher.last_error
    assert not watcher.changed()
    config.routing_file.write_text(ROUTING.format(version=3))
    assert watcher.reload()
    assert [m.version for m in applied] == [1, 3]
    assert watcher.last_error is None


def test_model_for_another_cluster_or_older_version_is_rejected(config: GatewayConfig) -> None:
    watcher = RoutingWatcher(config, lambda model: None)
    watcher.load_initial()
    config.routing_file.write_text(
        ROUTING.format(version=5).replace("cluster: east", "cluster: west")
    )
    assert not watcher.reload()
    assert "cluster: 'west' but this gateway is 'east'" in (watcher.last_error or "")
    config.routing_file.write_text(ROUTING.format(version=0))
    assert not watcher.reload()
    assert "older than the active version 1" in (watcher.last_error or "")


def test_initial_load_failure_is_raised(config: GatewayConfig) -> None:
    config.routing_file.unlink()
    with pytest.raises(GatewayConfigError, match="cannot read"):
        RoutingWatcher(config, lambda model: None).load_initial()
