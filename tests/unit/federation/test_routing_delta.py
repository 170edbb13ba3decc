"""Routing deltas: applied to the base a gateway holds, a delta gives exactly the routing a full
push gives (model-equal and byte-equal), for many random changes; malformed deltas are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from federation.model.routing import RoutingModel
from federation.model.routing_delta import apply_delta, routing_delta

CLUSTERS = ("aws", "gcp", "azure", "onprem")
SERVICES = ("checkout.shop", "cart.shop", "search.web", "auth.core", "pay.shop")


def peer(name: str, port: int) -> dict[str, Any]:
    return {
        "cluster": name,
        "trust_domain": "isthmus.test",
        "spiffe_id": f"spiffe://isthmus.test/isthmus/gateway/{name}",
        "addresses": [f"10.0.0.1:{port}"],
        "locality": {"cloud": name, "region": "r1"},
    }


@st.composite
def routings(draw: st.DrawFn) -> dict[str, Any]:
    """A valid routing of cluster "aws" (as JSON), from small domains so that two draws share
    many elements."""
    peers = draw(st.lists(st.sampled_from(CLUSTERS[1:]), unique=True))
    ports = st.sampled_from((443, 8443))
    known = ["aws", *peers]
    services = []
    for name in draw(st.lists(st.sampled_from(SERVICES), unique=True)):
        weights = draw(
            st.dictionaries(st.sampled_from(known), st.integers(1, 3), min_size=1, max_size=3)
        )
        health = draw(
            st.dictionaries(
                st.sampled_from(peers or ["gcp"]), st.sampled_from((0.0, 0.5, 1.0)), max_size=2
            )
        )
        services.append(
            {
                "name": name,
                "priorities": [{"weights": weights}],
                "allowed_sources": draw(st.sampled_from(([], ["*"]))),
                "cluster_health": health,
            }
        )
    return RoutingModel.model_validate(
        {
            "version": draw(st.integers(0, 50)),
            "cluster": "aws",
            "trust_domain": "isthmus.test",
            "locality": {"cloud": "aws", "region": draw(st.sampled_from(("r1", "r2")))},
            "peers": [peer(name, draw(ports)) for name in peers],
            "services": services,
        }
    ).model_dump(mode="json")


def through_the_wire(base: dict[str, Any], new: dict[str, Any]) -> RoutingModel:
    """What a gateway holding ``base`` rebuilds from the delta the federation sends."""
    delta = routing_delta(json.loads(json.dumps(base)), json.loads(json.dumps(new)))
    assert delta is not None
    held = RoutingModel.model_validate_json(json.dumps(base))
    return apply_delta(held, json.loads(json.dumps(delta)))


@settings(max_examples=300, deadline=None)
@given(routings(), routings())
def test_a_delta_rebuilds_exactly_the_full_routing(
    base: dict[str, Any], new: dict[str, Any]
) -> None:
    full = RoutingModel.model_validate_json(json.dumps(new))
    rebuilt = through_the_wire(base, new)
    assert rebuilt == full
    assert rebuilt.model_dump_json() == full.model_dump_json()


def test_a_health_flip_sends_only_the_changed_service() -> None:
    base = {
        "version": 4,
        "cluster": "aws",
        "trust_domain": "isthmus.test",
        "locality": {"cloud": "aws", "region": "r1"},
        "peers": [peer("gcp", 443)],
        "services": [
            {"name": name, "priorities": [{"weights": {"gcp": 1}}], "cluster_health": {}}
            for name in SERVICES
        ],
    }
    base = RoutingModel.model_validate(base).model_dump(mode="json")
    new = json.loads(json.dumps(base))
    new["version"] = 5
    new["services"][2]["cluster_health"] = {"gcp": 0.5}
    delta = routing_delta(base, new)
    assert delta == {"version": 5, "services": [[0, 2], new["services"][2], [3, 5]]}
    assert through_the_wire(base, new) == RoutingModel.model_validate(new)


def test_an_invalid_result_is_refused_as_a_full_routing_would_be() -> None:
    base = RoutingModel.model_validate(
        {
            "version": 1,
            "cluster": "aws",
            "trust_domain": "isthmus.test",
            "locality": {"cloud": "aws", "region": "r1"},
            "peers": [peer("gcp", 443)],
        }
    )
    with pytest.raises(ValidationError, match="lists itself as a peer"):
        apply_delta(base, {"version": 2, "peers": [[0, 1], peer("aws", 443)]})
    with pytest.raises(ValueError, match="neither an element nor a range"):
        apply_delta(base, {"version": 2, "peers": [[0, 2]]})
    with pytest.raises(ValueError, match="unknown routing field"):
        apply_delta(base, {"version": 2, "color": "red"})
    with pytest.raises(ValueError, match="no version"):
        apply_delta(base, {"peers": [[0, 1]]})


def test_routings_of_another_shape_get_no_delta() -> None:
    assert routing_delta({"version": 1, "a": 1}, {"version": 2, "b": 1}) is None
    assert routing_delta({"version": 1, "services": [1]}, {"version": 2, "services": [2]}) is None
    assert routing_delta([], {}) is None
