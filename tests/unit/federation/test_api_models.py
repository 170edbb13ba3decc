"""Wire models of the federation API: what a gateway sends is checked field by field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.model import Ack, HealthReport, JoinRequest, RoutingModel, Snapshot

JOIN = {
    "token": "isthmus-join-v1.abc",
    "trust_domain": "aws.isthmus.test",
    "trust_bundle": '{"keys": []}',
    "gateway_addresses": ["127.0.0.1:15443"],
    "locality": {"cloud": "aws", "region": "us-east-1", "zone": "a"},
    "capacity": 10,
    "cost": {"per_unit_hour": 0.5, "labels": {"tier": "spot"}},
}


def error_fields(err: ValidationError) -> set[str]:
    return {".".join(str(p) for p in item["loc"]) for item in err.errors()}


def test_join_request_accepts_a_complete_document() -> None:
    req = JoinRequest.model_validate(JOIN)
    assert req.gateway_addresses == ("127.0.0.1:15443",)
    assert req.cost.labels == {"tier": "spot"}


def test_join_request_names_unknown_and_mistyped_fields() -> None:
    with pytest.raises(ValidationError) as info:
        JoinRequest.model_validate({**JOIN, "colour": "blue", "capacity": "lots"})
    assert error_fields(info.value) == {"colour", "capacity"}


def test_join_request_rejects_bad_address_and_too_many_labels() -> None:
    labels = {f"k{i}": "v" for i in range(65)}
    with pytest.raises(ValidationError) as info:
        JoinRequest.model_validate({**JOIN, "gateway_addresses": ["nohost"], "labels": labels})
    assert error_fields(info.value) == {"gateway_addresses", "labels"}


def test_report_rejects_duplicate_services_and_out_of_range_error_rate() -> None:
    svc = {"name": "checkout.shop", "error_rate": 0.1}
    HealthReport.model_validate({"sequence": 1, "sent_at": 1.0, "services": [svc]})
    with pytest.raises(ValidationError, match="duplicate service"):
        HealthReport.model_validate({"sequence": 1, "sent_at": 1.0, "services": [svc, svc]})
    with pytest.raises(ValidationError) as info:
        HealthReport.model_validate(
            {"sequence": 1, "sent_at": 1.0, "services": [{**svc, "error_rate": 2}]}
        )
    assert error_fields(info.value) == {"services.0.error_rate"}


def test_nack_must_say_why() -> None:
    assert Ack(version=3, ok=True).ok
    with pytest.raises(ValidationError, match="NACK must say why"):
        Ack(version=3, ok=False)


def test_snapshot_version_must_match_its_routing_model() -> None:
    routing = RoutingModel(
        version=4, cluster="a", trust_domain="a.test", locality={"cloud": "x", "region": "y"}
    )
    assert Snapshot(version=4, routing=routing).routing.cluster == "a"
    with pytest.raises(ValidationError, match="differs"):
        Snapshot(version=5, routing=routing)
