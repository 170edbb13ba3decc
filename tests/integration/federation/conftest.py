"""A real federation on 127.0.0.1 (hypercorn, TLS 1.3, HTTP/2, SQLite) and fake gateways'
identity material: a CA and a jwt-svid key per cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec

from federation.service import pinned_client_context
from federation.service.server import FederationConfig, RunningFederation, serve_federation
from federation.trust import CertificateAuthority, SpiffeId, TrustBundle, TrustDomain
from federation.trust.jwt import mint_jwt_svid


@dataclass
class FakeCluster:
    """A cluster's trust domain (CA + jwt-svid key) as a gateway would hold it."""

    name: str
    port: int = 15443
    ca: CertificateAuthority = field(init=False)
    jwt_key: ec.EllipticCurvePrivateKey = field(init=False)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.create(TrustDomain(self.td), now=datetime.now(UTC))
        self.jwt_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"{self.name}-jwt-1"

    @property
    def td(self) -> str:
        return f"{self.name}.isthmus.test"

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{self.td}/isthmus/gateway/{self.name}"

    def bundle(self, sequence: int = 1) -> TrustBundle:
        return TrustBundle(
            TrustDomain(self.td), (self.ca.root,), {self.kid: self.jwt_key.public_key()}, sequence
        )

    def jwt(
        self, audience: str = "isthmus-federation", ttl: float = 60, sub: str | None = None
    ) -> str:
        subject = SpiffeId.parse(sub or self.spiffe_id)
        now = datetime.now(UTC)
        return mint_jwt_svid(
            self.jwt_key, self.kid, subject, audience, now=now, ttl=timedelta(seconds=ttl)
        )

    def auth(self, **kwargs: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.jwt(**kwargs)}"}

    def join_body(self, token: str, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": token,
            "trust_domain": self.td,
            "trust_bundle": self.bundle().to_json(),
            "gateway_addresses": [f"127.0.0.1:{self.port}"],
            "locality": {"cloud": "local", "region": self.name},
            "capacity": 100,
        }
        body.update(overrides)
        return body


def fed_config(tmp_path: Path, **overrides: Any) -> FederationConfig:
    values: dict[str, Any] = {
        "listen_port": 0,
        "state_dir": tmp_path / "federation",
        "report_interval_s": 0.5,
        "long_poll_s": 2.0,
        "debounce_s": 0.0,
    }
    values.update(overrides)
    return FederationConfig(**values)


async def start_federation(nursery: trio.Nursery, config: FederationConfig) -> RunningFederation:
    fed: RunningFederation = await nursery.start(partial(serve_federation, config))
    return fed


async def start_leader(
    nursery: trio.Nursery, config: FederationConfig
) -> tuple[RunningFederation, trio.CancelScope]:
    """A replica that has won leadership, and the scope that kills it (cancel = the leader
    dies: its store connections drop and another replica takes over)."""
    scope = trio.CancelScope()

    async def run(
        task_status: trio.TaskStatus[RunningFederation] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                task_status.started(await start_federation(inner, config))
                await trio.sleep_forever()

    leader: RunningFederation = await nursery.start(run)
    with trio.fail_after(5):
        while not leader.service.publisher.leading:
            await trio.sleep(0.01)
    return leader, scope


@pytest.fixture
async def federation(nursery: trio.Nursery, tmp_path: Path) -> RunningFederation:
    return await start_federation(nursery, fed_config(tmp_path))


def client_for(fed: RunningFederation) -> httpx.AsyncClient:
    context = pinned_client_context(fed.ca_pem, fed.ca_fingerprint)
    return httpx.AsyncClient(base_url=fed.url, verify=context, http2=True, timeout=10)


@pytest.fixture
async def api(federation: RunningFederation) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(federation) as client:
        yield client


async def joined(
    fed: RunningFederation, api: httpx.AsyncClient, *names: str
) -> dict[str, FakeCluster]:
    """Join a fake cluster per name (ports 15001, 15002, ...)."""
    clusters = {}
    for index, name in enumerate(names):
        cluster = FakeCluster(name, port=15001 + index)
        token = await fed.service.create_join_token(name)
        response = await api.post("/v1/join", json=cluster.join_body(token))
        assert response.status_code == 201, response.text
        clusters[name] = cluster
    return clusters
