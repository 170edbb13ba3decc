"""Forwarding one HTTP request: attempts with retries, then streaming the response back."""

from __future__ import annotations

import contextlib
import enum
from typing import TYPE_CHECKING, Literal

import trio

from proxy.engine.body import ReplayableBody
from proxy.engine.context import Outcome
from proxy.engine.observer import UpstreamEvent
from proxy.engine.replies import reply
from proxy.errors import UpstreamError
from proxy.listeners.exchange import Exchange
from proxy.loadbalancer.picker import LoadBalancer
from proxy.outlier.detector import Outcome as AttemptOutcome
from proxy.retry.policy import FailureKind, RetryBudget, retry_decision
from proxy.routes.headers import (
    REASON,
    Headers,
    clean_response,
    local_reply,
    traced_from_local_client,
    traced_from_peer_gateway,
    unavailable_response,
)
from proxy.routes.table import Endpoint, Route
from proxy.upstream.models import UpstreamRequest, UpstreamResponse

if TYPE_CHECKING:
    from proxy.engine.engine import ForwardingEngine

_FAILURE_OUTCOME = {
    FailureKind.CONNECT_FAILURE: AttemptOutcome.CONNECT_FAILURE,
    FailureKind.PER_TRY_TIMEOUT: AttemptOutcome.TIMEOUT,
    FailureKind.RESET_BEFORE_HEADERS: AttemptOutcome.GATEWAY_ERROR,
    FailureKind.PEER_503: AttemptOutcome.GATEWAY_ERROR,
}
_NOTHING_TRIED: frozenset[str] = frozenset()
_FAILURE_STATUS = {
    FailureKind.CONNECT_FAILURE: (503, "upstream_connect_failure"),
    FailureKind.PER_TRY_TIMEOUT: (504, "upstream_timeout"),
    FailureKind.RESET_BEFORE_HEADERS: (502, "upstream_reset"),
    FailureKind.GOAWAY: (503, "upstream_refused"),
    FailureKind.PEER_503: (503, "peer_unavailable"),
}


def outcome_of(status: int) -> AttemptOutcome:
    if status < 500:
        return AttemptOutcome.SUCCESS
    return AttemptOutcome.GATEWAY_ERROR if status in (502, 503, 504) else AttemptOutcome.HTTP_5XX


async def forward(
    engine: ForwardingEngine,
    exchange: Exchange,
    route: Route,
    lb: LoadBalancer,
    out: Outcome,
    *,
    now: float,
) -> None:
    """Forward ``exchange`` along ``route`` within ``route.timeout_s`` from ``now`` (the
    trio clock, read by the caller with no checkpoint since); always answers."""
    down = exchange.downstream
    # The authority travels as UpstreamRequest.authority (:authority / Host added by the pool).
    if down.listener == "inbound":
        peer = down.peer
        headers, out.trace_id = traced_from_peer_gateway(
            exchange.headers,
            peer_cluster="" if peer is None else peer.cluster,
            peer_identity="" if peer is None else peer.identity,
            rng=engine.rng,
            keep_host=False,
        )
    else:
        headers, out.trace_id = traced_from_local_client(
            exchange.headers,
            client_ip=down.remote.rsplit(":", 1)[0],
            proto="https" if down.tls else "http",
            local_cluster=engine.table.local_cluster,
            rng=engine.rng,
            keep_host=False,
        )
    body = None if exchange.body is None else ReplayableBody(exchange.body, engine.replay_limit)
    budget = engine.state.budget(route.service)
    budget.begin_request()
    deadline = now + route.timeout_s
    try:
        picked = await _attempts(
            engine,
            exchange,
            route,
            lb,
            budget,
            now=now,
            deadline=deadline,
            headers=headers,
            body=body,
            out=out,
        )
        if picked is _Stop.TIMED_OUT:
            await _timed_out(exchange, route, out)
        elif picked is not _Stop.ANSWERED:
            if getattr(picked[1].body, "buffered_to_end", False):
                # The upstream already delivered the body whole: no cancel scope is needed,
                # nothing is left to wait for from the service (a slow client is the
                # listener's ``request_timeout_s`` business). A scope costs several µs, as
                # much as the rest of the engine's bookkeeping for a request.
                await _relay(engine, exchange, route, picked, out)
            else:
                await _relay_within(engine, exchange, route, picked, out, deadline=deadline)
    finally:
        budget.end_request()
        if body is not None:
            out.bytes_received = body.pulled


async def _relay_within(
    engine: ForwardingEngine,
    exchange: Exchange,
    route: Route,
    picked: tuple[Endpoint, UpstreamResponse],
    out: Outcome,
    *,
    deadline: float,
) -> None:
    """Relay under the route's deadline (a body still to come from the upstream)."""
    with trio.move_on_at(deadline) as scope:
        await _relay(engine, exchange, route, picked, out)
    if scope.cancelled_caught:
        await _timed_out(exchange, route, out)


async def _timed_out(exchange: Exchange, route: Route, out: Outcome) -> None:
    msg = f"service {route.service!r} did not answer within {route.timeout_s}s"
    await reply(exchange, out, local_reply(504, "request_timeout", msg))


class _Stop(enum.Enum):
    """Why :func:`_attempts` returned no response."""

    ANSWERED = "answered"  # a local reply was sent
    TIMED_OUT = "timed_out"  # the route's deadline passed (the caller answers 504)


async def _attempts(
    engine: ForwardingEngine,
    exchange: Exchange,
    route: Route,
    lb: LoadBalancer,
    budget: RetryBudget,
    *,
    now: float,
    deadline: float,
    headers: Headers,
    body: ReplayableBody | None,
    out: Outcome,
) -> tuple[Endpoint, UpstreamResponse] | _Stop:
    """Try endpoints until one answers (returned with its endpoint: the caller relays it and
    ends its in-flight count) or retrying must stop (then a local reply was sent:
    ``ANSWERED``), or the route's ``deadline`` passes (``TIMED_OUT``). No cancel scope: each
    attempt's per-try timeout is cut to the time left before ``deadline``. ``now``: the
    clock for the first attempt (no checkpoint since the caller read it)."""
    tried: list[str] = []
    avoid: str | None = None
    last: FailureKind | None = None
    reason = ""
    for attempt in range(1, max(1, route.retry.attempts) + 1):
        if attempt > 1:
            now = trio.current_time()
        if now >= deadline:
            return _Stop.TIMED_OUT
        pick = lb.pick(
            route,
            engine.state,
            now,
            engine.rng,
            exclude=frozenset(tried) if tried else _NOTHING_TRIED,
            avoid_cluster=avoid,
        )
        ep = pick.endpoint
        if ep is None:
            reason = pick.reason
            break
        tried.append(ep.key)
        out.endpoint, out.destination_cluster = ep.key, ep.locality.cluster
        result = await _attempt(
            engine,
            exchange,
            route,
            ep,
            budget,
            now=now,
            time_left=deadline - now,
            headers=headers,
            body=body,
            retry=attempt > 1,
        )
        if isinstance(result, UpstreamResponse):
            return ep, result  # in-flight count ends in _relay
        if result is _Stop.TIMED_OUT:
            return result
        last = result
        _event(engine, "failure", route, ep, result.value)
        decision = retry_decision(
            result,
            method=exchange.method,
            body_started=_body_started(body, result),
            attempt=attempt,
            settings=route.retry,
            budget=budget,
            body_replayable=body is None or body.replayable,
        )
        if not decision.retry:
            if decision.reason == "budget_exhausted":
                _event(engine, "budget_exhausted", route, ep, result.value)
            await _give_up(exchange, route, out, result, f"not retried ({decision.reason})")
            return _Stop.ANSWERED
        out.retries += 1
        avoid = ep.locality.cluster if ep.kind == "peer" else None
        _event(engine, "retry", route, ep, result.value)
    if last is None:
        await reply(exchange, out, unavailable_response(reason, route.service))
    else:
        await _give_up(exchange, route, out, last, "every attempt failed")
    return _Stop.ANSWERED


async def _attempt(
    engine: ForwardingEngine,
    exchange: Exchange,
    route: Route,
    ep: Endpoint,
    budget: RetryBudget,
    *,
    now: float,
    time_left: float,
    headers: Headers,
    body: ReplayableBody | None,
    retry: bool,
) -> UpstreamResponse | FailureKind | Literal[_Stop.TIMED_OUT]:
    """One attempt with its accounting: retry budget, in-flight count (left open when a
    response is returned), outlier outcome of a failure. A 503 with ``x-isthmus-reason``
    from a peer gateway is a failure (:attr:`FailureKind.PEER_503`), not a response. When
    the route's deadline (``time_left``) comes before the per-try timeout and passes, that
    is ``TIMED_OUT``: not the endpoint's failure (no outlier outcome, no retry)."""
    state = engine.state
    per_try = route.retry.per_try_timeout_s
    route_bound = time_left < per_try
    if retry:
        budget.begin_retry()
    state.begin(ep.key)
    req = UpstreamRequest(  # positional: the field order of UpstreamRequest
        exchange.method,
        exchange.scheme or b"http",
        exchange.authority,
        exchange.path,
        headers,
        None if body is None else body.attempt(),
    )
    result: UpstreamResponse | FailureKind | Literal[_Stop.TIMED_OUT]
    try:
        try:
            timeout_s = time_left if route_bound else per_try
            result = await engine.upstream.request(ep, req, timeout_s=timeout_s, now=now)
        except UpstreamError as err:
            result = _failure_of(err)
            if route_bound and result is FailureKind.PER_TRY_TIMEOUT:
                result = _Stop.TIMED_OUT
        else:
            if result.status == 503 and ep.kind == "peer" and _has_reason(result.headers):
                await _close_quietly(result)
                result = FailureKind.PEER_503
    except BaseException:
        state.end(ep.key)
        raise
    finally:
        if retry:
            budget.end_retry()
    if isinstance(result, FailureKind):
        state.end(ep.key)
        _record(engine, route, ep, _FAILURE_OUTCOME.get(result))
    elif result is _Stop.TIMED_OUT:
        state.end(ep.key)
    return result


def _failure_of(err: UpstreamError) -> FailureKind:
    try:
        return FailureKind(err.failure)
    except ValueError:
        return FailureKind.RESET_BEFORE_HEADERS


def _has_reason(headers: Headers) -> bool:
    return any(name == REASON for name, _ in headers)


async def _give_up(
    exchange: Exchange, route: Route, out: Outcome, failure: FailureKind, why: str
) -> None:
    status, reason = _FAILURE_STATUS.get(failure, (503, "upstream_unavailable"))
    msg = f"service {route.service!r}: {failure.value}, {why}"
    await reply(exchange, out, local_reply(status, reason, msg))


def _event(engine: ForwardingEngine, kind: str, route: Route, ep: Endpoint, detail: str) -> None:
    engine.observer.on_upstream_event(
        UpstreamEvent(kind, route.service, ep.key, ep.locality.cluster, detail)
    )


def _body_started(body: ReplayableBody | None, failure: FailureKind) -> bool:
    """Whether the upstream may have seen (part of) the request."""
    if body is not None:
        return body.started
    return failure not in (FailureKind.CONNECT_FAILURE, FailureKind.GOAWAY)


async def _relay(
    engine: ForwardingEngine,
    exchange: Exchange,
    route: Route,
    picked: tuple[Endpoint, UpstreamResponse],
    out: Outcome,
) -> None:
    """Stream the response back at the client's pace; ends the endpoint's in-flight count."""
    ep, resp = picked
    outcome = outcome_of(resp.status)
    complete = False
    try:
        out.status = resp.status
        await exchange.start_response(resp.status, clean_response(resp.headers))
        body = resp.body
        ended = False
        async for chunk in body:
            # the upstream's last chunk (no trailers follow) ends the stream with the data:
            # that is end_response without trailers (the Exchange contract), not called again
            ended = bool(getattr(body, "at_end", False))
            await exchange.send_data(chunk, end_stream=ended)
            out.bytes_sent += len(chunk)
            if ended:
                break
        complete = True
        if not ended:
            await exchange.end_response(resp.trailers or None)
    except UpstreamError:
        outcome = AttemptOutcome.GATEWAY_ERROR
        out.reason = "upstream_reset_mid_body"
        await exchange.abort()
    finally:
        if complete:
            await resp.aclose()  # already released by the finished body: no I/O
        else:
            await _close_quietly(resp)
        engine.state.end(ep.key)
        _record(engine, route, ep, outcome)


async def _close_quietly(resp: UpstreamResponse) -> None:
    """Release the upstream stream even when we are being cancelled."""
    with trio.move_on_after(1.0) as scope:
        scope.shield = True
        with contextlib.suppress(UpstreamError):
            await resp.aclose()


def _record(
    engine: ForwardingEngine, route: Route, ep: Endpoint, outcome: AttemptOutcome | None
) -> None:
    if outcome is None:
        return
    if outcome is AttemptOutcome.SUCCESS:
        engine.state.record_success(route.service, ep.key)  # no clock, no group size
        return
    event = engine.state.record(route, ep, outcome, trio.current_time())
    if event is not None:
        engine.observer.on_upstream_event(
            UpstreamEvent(
                "ejected", route.service, ep.key, ep.locality.cluster, event.reason, event.until
            )
        )
