"""The store's operations as synchronous transaction bodies, shared by every SQL backend.

Each function runs inside one transaction (see :class:`Transaction`) in a worker thread;
arguments are already validated by :mod:`federation.store.sqlstore`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from federation.store.errors import (
    DuplicateToken,
    StaleBundleSequence,
    TokenAlreadyUsed,
    TokenExpired,
    TokenNotFound,
    TokenSecretMismatch,
)
from federation.store.records import (
    AckState,
    BundleRecord,
    Change,
    ClusterRecord,
    DecisionRecord,
    EventRecord,
    PruneCounts,
    ReportRecord,
    ServiceRecord,
)
from federation.store.transaction import Row, Transaction

BUNDLE_HISTORY_KEPT = 20


def create_join_token(
    tx: Transaction, *, token_id: str, cluster: str, secret_hash: str, expires_at: float
) -> None:
    if tx.one("SELECT 1 FROM join_tokens WHERE token_id = ?", (token_id,)) is not None:
        raise DuplicateToken(token_id, f"join token {token_id!r} already exists")
    tx.run(
        "INSERT INTO join_tokens (token_id, cluster, secret_hash, expires_at) VALUES (?, ?, ?, ?)",
        (token_id, cluster, secret_hash, expires_at),
    )
    tx.changed(f"token:{token_id}")


def check_join_token(tx: Transaction, *, token_id: str, secret_hash: str, now: float) -> str:
    row = tx.one(
        "SELECT cluster, secret_hash, expires_at, used_at FROM join_tokens WHERE token_id = ?",
        (token_id,),
    )
    if row is None:
        raise TokenNotFound(token_id, f"join token {token_id!r} does not exist")
    cluster, stored_hash, expires_at, used_at = row
    if not hmac.compare_digest(str(stored_hash).encode(), secret_hash.encode()):
        raise TokenSecretMismatch(
            token_id, f"join token {token_id!r}: the secret does not match (tampered token?)"
        )
    if used_at is not None:
        raise TokenAlreadyUsed(token_id, f"join token {token_id!r} was already used")
    if now >= expires_at:
        raise TokenExpired(token_id, f"join token {token_id!r} expired; create a new one")
    return str(cluster)


def consume_join_token(tx: Transaction, *, token_id: str, secret_hash: str, now: float) -> str:
    cluster = check_join_token(tx, token_id=token_id, secret_hash=secret_hash, now=now)
    tx.run("UPDATE join_tokens SET used_at = ? WHERE token_id = ?", (now, token_id))
    tx.changed(f"token:{token_id}")
    return cluster


def upsert_cluster(tx: Transaction, *, cluster: ClusterRecord) -> None:
    tx.run(
        "INSERT INTO clusters (name, trust_domain, document) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET trust_domain = excluded.trust_domain, "
        "document = excluded.document",
        (cluster.name, cluster.trust_domain, cluster.model_dump_json()),
    )
    tx.changed(f"cluster:{cluster.name}")


def get_cluster(tx: Transaction, *, name: str) -> ClusterRecord | None:
    row = tx.one("SELECT document FROM clusters WHERE name = ?", (name,))
    return None if row is None else ClusterRecord.model_validate_json(row[0])


def cluster_of_trust_domain(tx: Transaction, *, trust_domain: str) -> str | None:
    row = tx.one(
        "SELECT name FROM clusters WHERE trust_domain = ? ORDER BY name LIMIT 1", (trust_domain,)
    )
    return None if row is None else str(row[0])


def prune(tx: Transaction, *, events_before: float, tokens_before: float) -> PruneCounts:
    events = tx.run("DELETE FROM events WHERE at < ?", (events_before,))
    tokens = tx.run(
        "DELETE FROM join_tokens WHERE (used_at IS NOT NULL AND used_at < ?) OR expires_at < ?",
        (tokens_before, tokens_before),
    )
    if tokens:
        tx.run(
            "DELETE FROM changes WHERE substr(topic, 1, 6) = ? AND substr(topic, 7) NOT IN "
            "(SELECT token_id FROM join_tokens)",
            ("token:",),
        )
    return PruneCounts(events, tokens)


def list_clusters(tx: Transaction) -> list[ClusterRecord]:
    rows = tx.all("SELECT document FROM clusters ORDER BY name")
    return [ClusterRecord.model_validate_json(row[0]) for row in rows]


def put_bundle(
    tx: Transaction,
    *,
    trust_domain: str,
    sequence: int,
    bundle: str,
    signed_update: str | None,
    now: float,
) -> BundleRecord:
    row = tx.one("SELECT sequence FROM bundles WHERE trust_domain = ?", (trust_domain,))
    if row is not None and sequence <= int(row[0]):
        raise StaleBundleSequence(trust_domain, sequence, int(row[0]))
    params = (trust_domain, sequence, bundle, signed_update, now)
    tx.run(
        "INSERT INTO bundles (trust_domain, sequence, bundle, signed_update, stored_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trust_domain) DO UPDATE SET "
        "sequence = excluded.sequence, bundle = excluded.bundle, "
        "signed_update = excluded.signed_update, stored_at = excluded.stored_at",
        params,
    )
    tx.run(
        "INSERT INTO bundle_history (trust_domain, sequence, bundle, signed_update, stored_at) "
        "VALUES (?, ?, ?, ?, ?)",
        params,
    )
    tx.run(
        "DELETE FROM bundle_history WHERE trust_domain = ? AND sequence < ("
        " SELECT MIN(sequence) FROM (SELECT sequence FROM bundle_history WHERE trust_domain = ?"
        " ORDER BY sequence DESC LIMIT ?) AS kept)",
        (trust_domain, trust_domain, BUNDLE_HISTORY_KEPT),
    )
    tx.changed(f"bundle:{trust_domain}")
    return BundleRecord(trust_domain, sequence, bundle, signed_update, now)


_BUNDLE_SELECT = "SELECT trust_domain, sequence, bundle, signed_update, stored_at FROM "


def _bundle(row: Row) -> BundleRecord:
    return BundleRecord(str(row[0]), int(row[1]), str(row[2]), row[3], float(row[4]))


def get_bundle(tx: Transaction, *, trust_domain: str) -> BundleRecord | None:
    row = tx.one(_BUNDLE_SELECT + "bundles WHERE trust_domain = ?", (trust_domain,))
    return None if row is None else _bundle(row)


def list_bundles(tx: Transaction) -> list[BundleRecord]:
    return [_bundle(r) for r in tx.all(_BUNDLE_SELECT + "bundles ORDER BY 1")]


def bundle_history(tx: Transaction, *, trust_domain: str, limit: int) -> list[BundleRecord]:
    rows = tx.all(
        _BUNDLE_SELECT + "bundle_history WHERE trust_domain = ? ORDER BY sequence DESC LIMIT ?",
        (trust_domain, limit),
    )
    return [_bundle(r) for r in rows]


def record_report(tx: Transaction, *, cluster: str, report: str, received_at: float) -> None:
    tx.run(
        "INSERT INTO reports (cluster, received_at, report) VALUES (?, ?, ?) "
        "ON CONFLICT (cluster) DO UPDATE SET received_at = excluded.received_at, "
        "report = excluded.report",
        (cluster, received_at, report),
    )
    tx.changed(f"report:{cluster}")


def record_reports(tx: Transaction, *, reports: Sequence[tuple[str, str, float]]) -> None:
    """Many ``(cluster, report, received_at)`` upserts in one transaction; for a cluster given
    twice the later one wins (arrival order)."""
    latest = {cluster: (report, at) for cluster, report, at in reports}
    tx.run_many(
        "INSERT INTO reports (cluster, received_at, report) VALUES (?, ?, ?) "
        "ON CONFLICT (cluster) DO UPDATE SET received_at = excluded.received_at, "
        "report = excluded.report",
        [(cluster, at, report) for cluster, (report, at) in sorted(latest.items())],
    )
    tx.changed_many([f"report:{cluster}" for cluster in sorted(latest)])


def get_report(tx: Transaction, *, cluster: str) -> ReportRecord | None:
    row = tx.one("SELECT cluster, received_at, report FROM reports WHERE cluster = ?", (cluster,))
    return None if row is None else ReportRecord(str(row[0]), float(row[1]), str(row[2]))


def list_reports(tx: Transaction) -> list[ReportRecord]:
    rows = tx.all("SELECT cluster, received_at, report FROM reports ORDER BY cluster")
    return [ReportRecord(str(r[0]), float(r[1]), str(r[2])) for r in rows]


AckItem = tuple[str, int, bool, str | None, float]


def record_acks(tx: Transaction, *, acks: Sequence[AckItem]) -> None:
    """Many ``(cluster, version, ok, error, at)`` answers in one transaction, in order."""
    for cluster, version, ok, error, at in acks:
        _apply_ack(tx, cluster=cluster, version=version, ok=ok, error=error, at=at)
    tx.changed_many([f"ack:{cluster}" for cluster in sorted({ack[0] for ack in acks})])


def record_ack(
    tx: Transaction, *, cluster: str, version: int, ok: bool, error: str | None, at: float
) -> None:
    _apply_ack(tx, cluster=cluster, version=version, ok=ok, error=error, at=at)
    tx.changed(f"ack:{cluster}")


def _apply_ack(
    tx: Transaction, *, cluster: str, version: int, ok: bool, error: str | None, at: float
) -> None:
    tx.run("INSERT INTO snapshot_acks (cluster) VALUES (?) ON CONFLICT DO NOTHING", (cluster,))
    if ok:
        tx.run(
            "UPDATE snapshot_acks SET acked_version = ?, acked_at = ? "
            "WHERE cluster = ? AND acked_version < ?",
            (version, at, cluster, version),
        )
    else:
        tx.run(
            "UPDATE snapshot_acks SET nacked_version = ?, nacked_error = ?, nacked_at = ? "
            "WHERE cluster = ?",
            (version, error or "rejected without a reason", at, cluster),
        )


def get_ack_state(tx: Transaction, *, cluster: str) -> AckState:
    row = tx.one(
        "SELECT acked_version, acked_at, nacked_version, nacked_error, nacked_at "
        "FROM snapshot_acks WHERE cluster = ?",
        (cluster,),
    )
    if row is None:
        return AckState(cluster)
    return AckState(cluster, int(row[0]), row[1], int(row[2]), row[3], row[4])


def put_service(tx: Transaction, *, name: str, policy: str, now: float) -> None:
    tx.run(
        "INSERT INTO services (name, policy, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET policy = excluded.policy, "
        "updated_at = excluded.updated_at",
        (name, policy, now),
    )
    tx.changed(f"service:{name}")


def delete_service(tx: Transaction, *, name: str) -> bool:
    if tx.run("DELETE FROM services WHERE name = ?", (name,)) == 0:
        return False
    tx.changed(f"service:{name}")
    return True


def list_services(tx: Transaction) -> list[ServiceRecord]:
    rows = tx.all("SELECT name, policy, updated_at FROM services ORDER BY name")
    return [ServiceRecord(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def put_decisions(tx: Transaction, *, decisions: Mapping[str, str], now: float) -> None:
    tx.run("DELETE FROM decisions")
    for service, decision in sorted(decisions.items()):
        tx.run(
            "INSERT INTO decisions (service, decision, decided_at) VALUES (?, ?, ?)",
            (service, decision, now),
        )
    tx.changed("decision")


def list_decisions(tx: Transaction) -> list[DecisionRecord]:
    rows = tx.all("SELECT service, decision, decided_at FROM decisions ORDER BY service")
    return [DecisionRecord(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def record_recovery(tx: Transaction, *, cluster: str, at: float) -> None:
    tx.run(
        "INSERT INTO cluster_recoveries (cluster, recovered_at) VALUES (?, ?) "
        "ON CONFLICT (cluster) DO UPDATE SET recovered_at = excluded.recovered_at",
        (cluster, at),
    )
    tx.changed(f"recovery:{cluster}")


def list_recoveries(tx: Transaction) -> dict[str, float]:
    rows = tx.all("SELECT cluster, recovered_at FROM cluster_recoveries ORDER BY cluster")
    return {str(r[0]): float(r[1]) for r in rows}


def append_event(tx: Transaction, *, kind: str, subject: str, detail: str, at: float) -> int:
    row = tx.one(
        "INSERT INTO events (kind, subject, detail, at) VALUES (?, ?, ?, ?) RETURNING id",
        (kind, subject, detail, at),
    )
    assert row is not None
    tx.changed("event")
    return int(row[0])


def append_events(tx: Transaction, *, events: Sequence[tuple[str, str, str, float]]) -> list[int]:
    ids = []
    for kind, subject, detail, at in events:
        row = tx.one(
            "INSERT INTO events (kind, subject, detail, at) VALUES (?, ?, ?, ?) RETURNING id",
            (kind, subject, detail, at),
        )
        assert row is not None
        ids.append(int(row[0]))
    if ids:
        tx.changed("event")
    return ids


def list_events(tx: Transaction, *, after_id: int, limit: int) -> list[EventRecord]:
    rows = tx.all(
        "SELECT id, kind, subject, detail, at FROM events WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [EventRecord(int(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4])) for r in rows]


def changes_since(tx: Transaction, *, seq: int) -> list[Change]:
    rows = tx.all("SELECT seq, topic FROM changes WHERE seq > ? ORDER BY seq", (seq,))
    return [Change(int(r[0]), str(r[1])) for r in rows]


def current_change_seq(tx: Transaction) -> int:
    row = tx.one("SELECT COALESCE(MAX(seq), 0) FROM changes")
    return 0 if row is None else int(row[0])
