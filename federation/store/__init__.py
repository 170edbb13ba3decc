"""Persistence of the federation service: a :class:`Store` Protocol and its backends.

``sqlite`` (embedded default, one process) and ``postgres`` (several replicas, leader election
with advisory locks, change fan-out with LISTEN/NOTIFY). Open one with :func:`open_store`::

    async with open_store("sqlite:///var/lib/isthmus/federation.db") as store:
        await store.record_report("aws-use1", report_json, received_at=now)

See ``docs/store.md``.
"""

from federation.store.composed import (
    ComposedJsonObject,
    DocumentPart,
    SharedText,
    TextSlice,
    join_parts,
    normalise_parts,
)
from federation.store.documents import EncodedJsonObject, SplitJsonObject
from federation.store.errors import (
    DuplicateToken,
    InvalidDocument,
    LeadershipLost,
    SchemaVersionError,
    StaleBundleSequence,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    TokenAlreadyUsed,
    TokenError,
    TokenExpired,
    TokenNotFound,
    TokenSecretMismatch,
)
from federation.store.protocol import JsonDocument, LeaderWork, Store
from federation.store.records import (
    AckState,
    BundleRecord,
    Change,
    ClusterRecord,
    ComposedSnapshot,
    DecisionRecord,
    EventRecord,
    PruneCounts,
    ReportRecord,
    ServiceRecord,
    SnapshotRecord,
)
from federation.store.registry import (
    StoreConfig,
    open_store,
    register_backend,
    sqlite_url_for_state_dir,
)

__all__ = [
    "AckState",
    "BundleRecord",
    "Change",
    "ClusterRecord",
    "ComposedJsonObject",
    "ComposedSnapshot",
    "DecisionRecord",
    "DocumentPart",
    "DuplicateToken",
    "EncodedJsonObject",
    "EventRecord",
    "InvalidDocument",
    "JsonDocument",
    "LeaderWork",
    "LeadershipLost",
    "PruneCounts",
    "ReportRecord",
    "SchemaVersionError",
    "ServiceRecord",
    "SharedText",
    "SnapshotRecord",
    "SplitJsonObject",
    "StaleBundleSequence",
    "Store",
    "StoreConfig",
    "StoreConfigError",
    "StoreError",
    "StoreUnavailable",
    "TextSlice",
    "TokenAlreadyUsed",
    "TokenError",
    "TokenExpired",
    "TokenNotFound",
    "TokenSecretMismatch",
    "join_parts",
    "normalise_parts",
    "open_store",
    "register_backend",
    "sqlite_url_for_state_dir",
]
