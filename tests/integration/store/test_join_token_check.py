"""``check_join_token``: the same verdicts as ``consume_join_token``, and nothing used up
(both backends, through the ``store`` fixture)."""

from __future__ import annotations

import pytest

from federation.store import (
    Store,
    TokenAlreadyUsed,
    TokenExpired,
    TokenNotFound,
    TokenSecretMismatch,
)


async def test_check_answers_the_cluster_and_leaves_the_token_usable(store: Store) -> None:
    await store.create_join_token("tok-c", "aws-use1", "hash", expires_at=2000.0)
    assert await store.check_join_token("tok-c", "hash", now=1000.0) == "aws-use1"
    assert await store.check_join_token("tok-c", "hash", now=1000.0) == "aws-use1"
    assert await store.consume_join_token("tok-c", "hash", now=1000.0) == "aws-use1"
    with pytest.raises(TokenAlreadyUsed, match="already used"):
        await store.check_join_token("tok-c", "hash", now=1001.0)


async def test_check_refuses_like_consume(store: Store) -> None:
    with pytest.raises(TokenNotFound):
        await store.check_join_token("nope", "h", now=1.0)
    await store.create_join_token("tok-e", "gcp", "h", expires_at=10.0)
    with pytest.raises(TokenSecretMismatch):
        await store.check_join_token("tok-e", "wrong", now=1.0)
    with pytest.raises(TokenExpired):
        await store.check_join_token("tok-e", "h", now=10.0)
    assert await store.consume_join_token("tok-e", "h", now=9.0) == "gcp"  # still unused
