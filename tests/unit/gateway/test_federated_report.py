"""The pure parts of a federated gateway: its config section, load tracking and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.model import LocalEndpoint, Locality, RoutingModel, ServiceRoute
from gateway.config import GatewayConfig
from gateway.errors import GatewayConfigError
from gateway.federated import federation_wanted, state_dir_of
from gateway.identity import GatewayIdentity
from gateway.load import LoadSample, ServiceLoadTracker
from gateway.report import build_health_report, exported_services
from tests.helpers.pki import bundle_set, issue_svid, make_ca

BASE = """
cluster: east
trust_domain: east.isthmus.test
locality: {cloud: aws, region: us-east-1}
"""


def config(tmp_path: Path, extra: str = "") -> GatewayConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE + extra)
    return GatewayConfig.from_file(path)


def test_federation_section_resolves_state_dir_and_checks_addresses(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, "federation:\n  state_dir: state\n  advertise_addresses: [10.0.0.1:15443]\n"
    )
    assert cfg.federation is not None
    assert state_dir_of(cfg) == tmp_path.resolve() / "state"
    assert cfg.federation.advertise_addresses == ("10.0.0.1:15443",)
    assert federation_wanted(cfg, None)
    with pytest.raises(GatewayConfigError, match="advertise_addresses"):
        config(tmp_path, "federation:\n  advertise_addresses: [nohost]\n")


def test_file_mode_unless_a_token_section_or_earlier_join(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISTHMUS_HOME", str(tmp_path / "home"))
    cfg = config(tmp_path)
    assert state_dir_of(cfg) == tmp_path / "home" / "gateways" / "east"
    assert not federation_wanted(cfg, None)
    assert federation_wanted(cfg, "isthmus-join-v1.x")
    joined = tmp_path / "home" / "gateways" / "east" / "federation"
    joined.mkdir(parents=True)
    (joined / "federation.json").write_text("{}")
    assert federation_wanted(cfg, None)  # a restart needs no token


def test_load_tracker_rates_errors_and_latency_per_period() -> None:
    load = ServiceLoadTracker(alpha=0.5)
    assert load.sample(["a.b"], now=100.0) == {"a.b": LoadSample(0.0, 0.0, 0.0)}
    for status, seconds in ((200, 0.010), (200, 0.030), (503, 0.010), (0, 0.010)):
        load.record("a.b", status, seconds)
    sample = load.sample(["a.b", "c.d"], now=102.0)["a.b"]
    assert sample.request_rate == pytest.approx(2.0)  # 4 requests in 2 s
    assert sample.error_rate == pytest.approx(0.5)  # a 503 and an aborted exchange
    assert sample.latency_ewma_ms == pytest.approx(12.5)  # 10 -> 20 -> 15 -> 12.5
    again = load.sample(["a.b"], now=103.0)["a.b"]
    assert (again.request_rate, again.error_rate) == (0.0, 0.0)  # a new period
    assert again.latency_ewma_ms == pytest.approx(12.5)  # the EWMA carries over


EXPORTS = RoutingModel(
    version=1,
    cluster="east",
    trust_domain="east.isthmus.test",
    locality=Locality(cloud="aws", region="us-east-1"),
    services=(
        ServiceRoute(
            name="hello.demo",
            local_endpoints=(
                LocalEndpoint(address="127.0.0.1:8001"),
                LocalEndpoint(address="127.0.0.1:8002", weight=3, zone="a"),
            ),
            allowed_sources=("*",),
        ),
        ServiceRoute(name="remote.only"),
    ),
)


def test_report_carries_endpoint_health_load_and_peer_probes() -> None:
    assert exported_services(EXPORTS) == ["hello.demo"]
    report = build_health_report(
        EXPORTS,
        sequence=7,
        sent_at=1000.0,
        healthy=lambda service, key: key != "local:127.0.0.1:8002",
        in_flight={"local:127.0.0.1:8001": 2, "local:127.0.0.1:8002": 1, "peer:x:1.2.3.4:1": 9},
        load={"hello.demo": LoadSample(request_rate=50.0, error_rate=0.1, latency_ewma_ms=4.0)},
        peers={"west": True, "north": False, "east": True},
        capacity=100,
        links={
            "west/hello.demo": LoadSample(request_rate=5.0, error_rate=0.0, latency_ewma_ms=9.0)
        },
    )
    (svc,) = report.services
    assert [(ep.address, ep.healthy, ep.weight) for ep in svc.endpoints] == [
        ("127.0.0.1:8001", True, 1),
        ("127.0.0.1:8002", False, 3),
    ]
    assert (svc.in_flight, svc.request_rate, svc.error_rate, svc.latency_ewma_ms) == (
        3,
        50.0,
        0.1,
        4.0,
    )
    assert svc.capacity == 100 and svc.allowed_sources == ("*",)
    assert [(p.cluster, p.ok) for p in report.peers] == [("north", False), ("west", True)]
    assert report.sequence == 7
    (link,) = report.links
    assert (link.destination, link.service, link.request_rate, link.latency_ms) == (
        "west",
        "hello.demo",
        5.0,
        9.0,
    )


def test_federated_peer_bundles_survive_an_identity_file_reload(tmp_path: Path) -> None:
    own, peer = make_ca("east.isthmus.test"), make_ca("west.isthmus.test")
    cfg = config(tmp_path)
    identity = GatewayIdentity(cfg, issue_svid(own, cfg.gateway_spiffe_id), bundle_set(own))
    stale_own = make_ca("east.isthmus.test")  # the federation can never replace our own
    identity.set_federated_bundles(bundle_set(peer, stale_own))
    assert identity.bundles[peer.bundle().trust_domain] == peer.bundle()
    assert identity.bundles[own.bundle().trust_domain] == own.bundle()
    rotated = own.bundle(sequence=2)
    identity.update(bundles=bundle_set(own).with_bundle(rotated))  # what a file reload does
    assert identity.bundles[peer.bundle().trust_domain] == peer.bundle()
    assert identity.bundles[rotated.trust_domain] == rotated
