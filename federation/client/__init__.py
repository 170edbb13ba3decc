"""What a gateway uses to talk to its federation: join, reports, snapshot watch, ACK/NACK.

The link keeps one full-duplex HTTP/2 stream open (``POST /v1/clusters/{c}/stream``: raw ``h2``
over trio TLS, :mod:`federation.client.h2duplex`): snapshots are pushed down, reports and ACKs
go up. Typical use (inside the gateway's nursery)::

    state = ClientStateDir(state_dir / "federation")
    jwt_key, kid = state.load_or_create_jwt_key()
    bundle = registration_bundle(ca.bundle(), jwt_key, kid)   # CA roots + the jwt-svid key
    record = state.load_join() or await join_federation(token, trust_bundle=bundle, ...)
    state.save_join(record)
    async with FederationClient(record, jwt_key=jwt_key, kid=kid) as client:
        link = FederationLink(client, state, own_bundle=bundle, apply=..., report_source=...,
                              rng=random.Random())
        await nursery.start(link.run)
"""

from federation.client.api import FederationClient
from federation.client.bundles import BundleDecision, reconcile_bundles
from federation.client.errors import (
    ClientStateError,
    FederationClientError,
    FederationRefused,
    FederationUnavailable,
    SnapshotRejected,
)
from federation.client.join import fetch_pinned_ca, join_federation
from federation.client.link import (
    FederationLink,
    ReportSource,
    SnapshotApplier,
    Transport,
    backoff_delay,
)
from federation.client.state import (
    ClientStateDir,
    JoinRecord,
    PersistedSnapshot,
    key_id,
    registration_bundle,
)
from federation.client.stream import BundleState, SnapshotStream, StreamEnded

__all__ = [
    "BundleDecision",
    "BundleState",
    "ClientStateDir",
    "ClientStateError",
    "FederationClient",
    "FederationClientError",
    "FederationLink",
    "FederationRefused",
    "FederationUnavailable",
    "JoinRecord",
    "PersistedSnapshot",
    "ReportSource",
    "SnapshotApplier",
    "SnapshotRejected",
    "SnapshotStream",
    "StreamEnded",
    "Transport",
    "backoff_delay",
    "fetch_pinned_ca",
    "join_federation",
    "key_id",
    "reconcile_bundles",
    "registration_bundle",
]
