import yaml

from federation.model import RoutingModel
from gateway.translate import translate_model

MODEL = """
version: 7
cluster: aws-use1
trust_domain: aws-use1.isthmus.test
locality: {cloud: aws, region: us-east-1, zone: a}
peers:
  - cluster: gcp-euw1
    trust_domain: gcp-euw1.isthmus.test
    spiffe_id: spiffe://gcp-euw1.isthmus.test/isthmus/gateway/gcp-euw1
    addresses: ["10.0.0.1:15443", "10.0.0.2:15443"]
    locality: {cloud: gcp, region: europe-west1}
  - cluster: azure-weu
    trust_domain: azure-weu.isthmus.test
    spiffe_id: spiffe://azure-weu.isthmus.test/isthmus/gateway/azure-weu
    addresses: ["[fd00::1]:15443"]
    locality: {cloud: azure, region: westeurope}
services:
  - name: checkout.shop
    local_endpoints:
      - {address: "127.0.0.1:8080", weight: 3}
      - {address: "127.0.0.1:8081", weight: 1, protocol: h2c, zone: b}
    tcp_endpoints: ["127.0.0.1:5432"]
    allowed_sources: [gcp-euw1]
    timeout_s: 4
    retry: {attempts: 2, per_try_timeout_s: 0.5}
    fault: {delay_ms: 250, delay_percent: 10, abort_status: 503, abort_percent: 5}
    priorities:
      - weights: {aws-use1: 50, gcp-euw1: 50}
      - weights: {azure-weu: 1, aws-use1: 9}
  - name: catalog.shop
    local_endpoints: [{address: "127.0.0.1:9000"}]
"""


def model(text: str = MODEL) -> RoutingModel:
    return RoutingModel.model_validate(yaml.safe_load(text))


def test_levels_expand_to_local_and_peer_endpoints_with_exact_shares() -> None:
    route = translate_model(model()).routes["checkout.shop"]
    first = {ep.key: ep.weight for ep in route.priorities[0].endpoints}
    # 50 local split 3:1, 50 peer split over two addresses -> 37.5, 12.5, 25, 25
    assert first == {
        "local:127.0.0.1:8080": 3,
        "local:127.0.0.1:8081": 1,
        "peer:gcp-euw1:10.0.0.1:15443": 2,
        "peer:gcp-euw1:10.0.0.2:15443": 2,
    }


def test_peer_endpoints_carry_the_identity_they_must_present() -> None:
    route = translate_model(model()).routes["checkout.shop"]
    peer = route.priorities[0].endpoints[2]
    assert peer.kind == "peer"
    assert peer.expected_identity == "spiffe://gcp-euw1.isthmus.test/isthmus/gateway/gcp-euw1"
    assert (peer.host, peer.port, peer.locality.cloud) == ("10.0.0.1", 15443, "gcp")
    v6 = route.priorities[1].endpoints[0]
    assert (v6.host, v6.port) == ("fd00::1", 15443)


def test_a_cluster_already_preferred_is_not_repeated_in_a_later_level() -> None:
    route = translate_model(model()).routes["checkout.shop"]
    assert [ep.key for ep in route.priorities[1].endpoints] == ["peer:azure-weu:[fd00::1]:15443"]


def test_local_endpoints_keep_protocol_and_zone() -> None:
    eps = translate_model(model()).routes["checkout.shop"].priorities[0].endpoints
    assert (eps[0].kind, eps[0].locality.zone) == ("http1", "a")
    assert (eps[1].kind, eps[1].locality.zone) == ("h2c", "b")
    assert eps[0].locality.cluster == "aws-use1"


def test_policies_are_carried_over() -> None:
    route = translate_model(model()).routes["checkout.shop"]
    assert route.tcp_targets == (("127.0.0.1", 5432),)
    assert route.allows_source("gcp-euw1") and not route.allows_source("azure-weu")
    assert route.timeout_s == 4
    assert (route.retry.attempts, route.retry.per_try_timeout_s) == (2, 0.5)
    assert route.fault is not None and route.fault.delay_s == 0.25
    assert route.fault.abort_status == 503


def test_service_without_priorities_serves_its_local_endpoints() -> None:
    route = translate_model(model()).routes["catalog.shop"]
    assert [ep.key for g in route.priorities for ep in g.endpoints] == ["local:127.0.0.1:9000"]
    assert route.allowed_sources == frozenset()


def test_zero_weight_drains_a_cluster_and_keys_are_stable_across_versions() -> None:
    table = translate_model(model())
    drained = model(MODEL.replace("{aws-use1: 50, gcp-euw1: 50}", "{aws-use1: 0, gcp-euw1: 50}"))
    again = translate_model(drained)
    first = again.routes["checkout.shop"].priorities[0].endpoints
    assert {ep.kind for ep in first} == {"peer"}
    assert table.match("catalog.shop.global:80") == again.match("catalog.shop.global")
    assert table.version == 7 and table.local_cluster == "aws-use1"


def test_tcp_only_service_gets_its_tcp_targets_as_local_destinations() -> None:
    text = (
        MODEL
        + """  - name: db.shop
    tcp_endpoints: ["127.0.0.1:5432"]
"""
    )
    route = translate_model(model(text)).routes["db.shop"]
    assert [ep.key for g in route.priorities for ep in g.endpoints] == ["local:127.0.0.1:5432"]
    assert route.tcp_targets == (("127.0.0.1", 5432),)
