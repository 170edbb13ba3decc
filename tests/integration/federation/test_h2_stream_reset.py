"""One cancelled request must not take down the HTTP/2 connection the other requests share.

Server side: a client's RST_STREAM of one long-poll leaves the other streams answered (raw h2
client). Client side: cancelling ``FederationClient`` calls mid-flight (httpx is not cancel-safe
on HTTP/2: a HEADERS frame lost to cancellation desyncs HPACK and the server must close the
connection) never fails the long-polls sharing the connection."""

from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import trio

from federation.client.errors import FederationClientError
from federation.model import HealthReport
from federation.service.server import RunningFederation
from federation.service.tls import pinned_client_context
from tests.integration.federation.conftest import joined
from tests.integration.federation.test_client_link import Gateway


async def test_rst_stream_of_one_long_poll_keeps_the_other_streams(
    federation: RunningFederation, api: httpx.AsyncClient
) -> None:
    aws = (await joined(federation, api, "aws"))["aws"]
    first = await api.get("/v1/clusters/aws/snapshot", headers=aws.auth())
    path = f"/v1/clusters/aws/snapshot?after={first.headers['x-snapshot-version']}"
    url = urlsplit(federation.url)
    context = pinned_client_context(federation.ca_pem, federation.ca_fingerprint)
    context.set_alpn_protocols(["h2"])
    with trio.fail_after(10):
        stream = await trio.open_ssl_over_tcp_stream(
            str(url.hostname), int(url.port or 443), ssl_context=context
        )
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        ids: list[int] = []
        for _ in range(3):
            sid = conn.get_next_available_stream_id()
            headers = [(":method", "GET"), (":path", path), (":scheme", "https")]
            headers += [(":authority", url.netloc), ("authorization", f"Bearer {aws.jwt()}")]
            conn.send_headers(sid, headers, end_stream=True)
            ids.append(sid)
        await stream.send_all(conn.data_to_send())
        await trio.sleep(0.2)  # all three are waiting in the long-poll
        conn.reset_stream(ids[0], h2.errors.ErrorCodes.CANCEL)
        await stream.send_all(conn.data_to_send())
        await joined(federation, api, "gcp")  # a new snapshot: the server answers the polls
        ended: set[int] = set()
        statuses: dict[int, bytes] = {}
        while ended != set(ids[1:]):
            data = await stream.receive_some(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                assert not isinstance(event, h2.events.ConnectionTerminated), event
                if isinstance(event, h2.events.ResponseReceived):
                    statuses[event.stream_id] = dict(event.headers)[b":status"]
                if isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            await stream.send_all(conn.data_to_send())
        assert statuses == {ids[1]: b"200", ids[2]: b"200"}
        await stream.aclose()


async def test_cancelled_client_calls_never_fail_long_polls_on_the_same_connection(
    federation: RunningFederation, tmp_path: Path
) -> None:
    gw = Gateway("aws", tmp_path)
    await gw.join(await federation.service.create_join_token("aws"))
    rng = random.Random(5)
    failures: list[BaseException] = []
    async with gw.client() as client:
        current = await client.watch_once(-1)
        assert current is not None

        async def poll() -> None:
            try:
                await client.watch_once(current.version)
            except FederationClientError as err:
                failures.append(err)

        async def cancelled_report(sequence: int) -> None:
            report = HealthReport(sequence=sequence, sent_at=time.time())
            with trio.move_on_after(rng.uniform(0.0005, 0.02)):
                try:
                    await client.report(report)
                except FederationClientError as err:
                    failures.append(err)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(poll)
                for sequence in range(1, 201):
                    nursery.start_soon(cancelled_report, sequence)
                    await trio.sleep(0.002)
        assert failures == []
        await client.report(HealthReport(sequence=1000, sent_at=time.time()))
