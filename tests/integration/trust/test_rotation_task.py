"""The rotation task under MockClock: renews at (jittered) half-life, hands over each new SVID,
and retries after a failed issue."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import trio
import trio.testing

from federation.trust import (
    CertificateAuthority,
    SvidError,
    TlsCredentials,
    TrustDomain,
    X509Svid,
    gateway_id,
    issue_x509_svid,
    run_svid_rotation,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TD = TrustDomain("a.test")


async def test_renews_at_half_life_and_swaps(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()

    def wall() -> datetime:
        return T0 + timedelta(seconds=trio.current_time() - start)

    ca = CertificateAuthority.create(TD, now=T0)
    sid = gateway_id(TD, "c1")
    issued_at: list[datetime] = []
    received: list[X509Svid] = []

    async def issue() -> X509Svid:
        issued_at.append(wall())
        return issue_x509_svid(ca, sid, now=wall(), ttl=timedelta(hours=1))

    first = issue_x509_svid(ca, sid, now=T0, ttl=timedelta(hours=1))
    with trio.move_on_after(3 * 3600):  # three hours of mock time
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_svid_rotation(
                    first,
                    issue,
                    received.append,
                    rng=random.Random(3),
                    clock=wall,
                    jitter=0.0,
                    task_status=task_status,
                )
            )
    # not_before is backdated by a minute, so half-life of each 61-minute SVID comes at 29.5 min
    assert [round((t - T0).total_seconds()) for t in issued_at[:3]] == [1770, 3540, 5310]
    assert received[0].leaf != first.leaf and len(received) == len(issued_at)


async def test_failed_issue_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()

    def wall() -> datetime:
        return T0 + timedelta(seconds=trio.current_time() - start)

    ca = CertificateAuthority.create(TD, now=T0)
    sid = gateway_id(TD, "c1")
    attempts: list[float] = []
    done = trio.Event()
    received: list[X509Svid] = []

    async def issue() -> X509Svid:
        attempts.append(trio.current_time() - start)
        if len(attempts) < 3:
            raise SvidError("CA unreachable")
        return issue_x509_svid(ca, sid, now=wall())

    def on_new(svid: X509Svid) -> None:
        received.append(svid)
        done.set()

    first = issue_x509_svid(ca, sid, now=T0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_svid_rotation(
                first, issue, on_new, rng=random.Random(1), clock=wall, jitter=0.0
            )
        )
        with trio.fail_after(7200):
            await done.wait()
        nursery.cancel_scope.cancel()
    assert [round(a) for a in attempts] == [1770, 1780, 1790]
    assert len(received) == 1


async def test_rotation_swaps_the_tls_credentials(autojump_clock: trio.testing.MockClock) -> None:
    # Certificates valid around real time: TlsCredentials hands them to OpenSSL.
    real_t0 = datetime.now(UTC)
    start = trio.current_time()

    def wall() -> datetime:
        return real_t0 + timedelta(seconds=trio.current_time() - start)

    ca = CertificateAuthority.create(TD, now=real_t0)
    sid = gateway_id(TD, "c1")
    first = issue_x509_svid(ca, sid, now=real_t0)
    creds = TlsCredentials(first, {TD: ca.bundle()}, alpn=["h2"])
    old_context = creds.server_context
    swapped = trio.Event()

    async def issue() -> X509Svid:
        return issue_x509_svid(ca, sid, now=wall())

    def on_new(svid: X509Svid) -> None:
        creds.update(svid=svid)
        swapped.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_svid_rotation(first, issue, on_new, rng=random.Random(5), clock=wall)
        )
        with trio.fail_after(3600):
            await swapped.wait()
        nursery.cancel_scope.cancel()
    assert creds.svid.leaf != first.leaf
    assert creds.server_context is not old_context
    assert trio.current_time() - start < 1800  # renewed before half-life
