"""A federated gateway refuses to start, with one clear message, before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.service.join import create_join_token
from gateway.config import GatewayConfig
from gateway.errors import FederationJoinError
from gateway.federated import prepare_federation
from gateway.identity import GatewayIdentity
from tests.helpers.pki import bundle_set, issue_svid, make_ca


def federated(tmp_path: Path) -> tuple[GatewayConfig, GatewayIdentity]:
    config = GatewayConfig.from_mapping(
        {
            "cluster": "east",
            "trust_domain": "east.isthmus.test",
            "locality": {"cloud": "aws", "region": "us-east-1"},
            "federation": {"state_dir": str(tmp_path / "state")},
        }
    )
    ca = make_ca("east.isthmus.test")
    return config, GatewayIdentity(config, issue_svid(ca, config.gateway_spiffe_id), bundle_set(ca))


async def test_not_joined_and_no_token_says_how_to_join(tmp_path: Path) -> None:
    config, identity = federated(tmp_path)
    with pytest.raises(FederationJoinError, match="has not joined a federation.*--join TOKEN"):
        await prepare_federation(config, identity, None)
    assert (tmp_path / "state" / "federation" / "jwt.key").stat().st_mode & 0o777 == 0o600


async def test_token_of_another_cluster_or_damaged_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    config, identity = federated(tmp_path)
    # The URL is unreachable on purpose: these refusals must not need the federation.
    token, _ = create_join_token(
        federation_url="https://127.0.0.1:9", ca_sha256="00" * 32, cluster="west", now=0.0
    )
    with pytest.raises(FederationJoinError, match="token is for cluster 'west'.*'east'"):
        await prepare_federation(config, identity, token.encode())
    with pytest.raises(FederationJoinError, match="join refused: join token must start with"):
        await prepare_federation(config, identity, "not-a-token")
    assert not (tmp_path / "state" / "federation" / "federation.json").exists()
