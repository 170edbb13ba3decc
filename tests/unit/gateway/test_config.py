from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.errors import GatewayConfigError
from gateway.run import listener_limits

MINIMAL = """
cluster: aws-use1
trust_domain: aws-use1.isthmus.test
locality: {cloud: aws, region: us-east-1}
identity:
  svid: certs/svid.pem
  key: certs/svid.key
  bundles:
    aws-use1.isthmus.test: certs/own-bundle.json
    gcp-euw1.isthmus.test: /etc/isthmus/gcp-bundle.json
routing_file: routing.yaml
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_design_ports_and_loopback(tmp_path: Path) -> None:
    config = GatewayConfig.from_file(write(tmp_path, MINIMAL))
    assert (config.listeners.inbound_port, config.listeners.outbound_port) == (15443, 15001)
    assert config.listeners.admin_port == 15000
    assert config.listeners.bind == "127.0.0.1"
    assert config.limits.max_connections == 10_000
    assert config.workers == 1
    assert config.gateway_spiffe_id == "spiffe://aws-use1.isthmus.test/isthmus/gateway/aws-use1"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = GatewayConfig.from_file(write(tmp_path, MINIMAL))
    assert config.identity.svid == tmp_path.resolve() / "certs/svid.pem"
    assert config.routing_file == tmp_path.resolve() / "routing.yaml"
    bundles = config.identity.bundles
    assert bundles["gcp-euw1.isthmus.test"] == Path("/etc/isthmus/gcp-bundle.json")


def test_unknown_key_is_rejected_naming_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "limits: {max_conections: 5}\n")
    with pytest.raises(GatewayConfigError) as err:
        GatewayConfig.from_file(path)
    assert str(path) in str(err.value)
    assert "limits.max_conections" in str(err.value)


def test_bad_cluster_name_and_missing_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError, match="cluster"):
        GatewayConfig.from_file(write(tmp_path, MINIMAL.replace("aws-use1\n", "AWS_1\n", 1)))
    with pytest.raises(GatewayConfigError, match="cannot read"):
        GatewayConfig.from_file(tmp_path / "absent.yaml")


def test_tunnel_idle_timeout_defaults_to_an_hour_and_reaches_both_listeners(
    tmp_path: Path,
) -> None:
    default = GatewayConfig.from_file(write(tmp_path, MINIMAL))
    assert listener_limits(default).tunnel_idle_timeout_s == 3600.0
    tuned = GatewayConfig.from_file(
        write(tmp_path, MINIMAL + "limits: {tunnel_idle_timeout_s: 90}\n")
    )
    assert listener_limits(tuned).tunnel_idle_timeout_s == 90.0
    with pytest.raises(GatewayConfigError):
        GatewayConfig.from_file(write(tmp_path, MINIMAL + "limits: {tunnel_idle_timeout_s: 0}\n"))
