"""``isthmus federation serve|token create`` and ``isthmus status``.

Thin wrappers over :mod:`federation.service`: ``serve`` runs the API until interrupted;
``token create`` writes a single-use join token straight into the federation's store (so it
works whether or not the server is running) and prints it; ``status`` asks a running
federation's admin API, pinning its TLS CA from the state directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from isthmus.commands.trust_cmds import parse_duration

if TYPE_CHECKING:
    from federation.model import FederationStatus
    from federation.service.server import FederationConfig

federation_app = typer.Typer(help="The federation service.", no_args_is_help=True)
token_app = typer.Typer(help="Join tokens for gateways.", no_args_is_help=True)
federation_app.add_typer(token_app, name="token")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="federation.yaml (default: built-in defaults)"),
]


def _config(path: Path | None) -> FederationConfig:
    """The federation a command talks to: ``--config``, else the one a running ``isthmus up``
    of ``$ISTHMUS_HOME`` published, else the built-in defaults."""
    from federation.service.server import FederationConfig

    if path is not None:
        return FederationConfig.from_file(path)
    return _running_up_federation() or FederationConfig()


def _running_up_federation() -> FederationConfig | None:
    from urllib.parse import urlsplit

    from federation.service.server import FederationConfig
    from isthmus.commands.up_cmds import isthmus_home
    from isthmus.runner.lock import UpNotRunning, running_up

    try:
        info = running_up(isthmus_home())
    except UpNotRunning:
        return None
    state_dir, url = info.get("federation_state_dir"), info.get("federation_url")
    if not isinstance(state_dir, str) or not isinstance(url, str):
        return None
    port = urlsplit(url).port
    return FederationConfig(state_dir=Path(state_dir), listen_port=port or 8443)


class _SecondSignal(Exception):
    """A second SIGINT/SIGTERM arrived while draining: stop now (exit 130)."""


def configure_event_log(stream: TextIO | None = None) -> None:
    """Timeline events (``isthmus.events``, already JSON) go to stdout, one per line, at INFO
    (docs/observability.md); ``stream`` replaces stdout. Idempotent."""
    import logging
    import sys

    from federation.store.event_log import EVENTS_LOGGER

    events = logging.getLogger(EVENTS_LOGGER)
    if not events.handlers:
        handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        events.addHandler(handler)
        events.propagate = False
    events.setLevel(logging.INFO)


@federation_app.command("serve")
def serve(config: ConfigOption = None) -> None:
    """Run the federation API (HTTPS, HTTP/2) until SIGINT/SIGTERM.

    The first signal drains (cancels the server, closes connections and the store) and exits 0;
    a second one during the drain exits 130 at once. Neither prints a traceback."""
    import trio

    from federation.service.server import tune_gc_for_serving

    settings = _config(config)
    configure_event_log()
    tune_gc_for_serving()
    try:
        trio.run(_serve_until_signalled, settings)
    except (KeyboardInterrupt, _SecondSignal):  # a signal before the handler, or a second one
        typer.echo("federation stopped without draining", err=True)
        raise typer.Exit(130) from None
    except BaseExceptionGroup as group:
        if group.subgroup(_SecondSignal) is not None or group.subgroup(KeyboardInterrupt):
            typer.echo("federation stopped without draining", err=True)
            raise typer.Exit(130) from None
        errors = group.exceptions
        if len(errors) == 1 and isinstance(errors[0], Exception):
            raise errors[0] from group  # e.g. the port is taken: the plain error, not a group
        raise
    typer.echo("federation stopped")


async def _serve_until_signalled(settings: FederationConfig) -> None:
    import signal

    import trio

    from federation.service.server import RunningFederation, serve_federation

    server_scope = trio.CancelScope()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def server_then_stop() -> None:
                with server_scope:  # cancelled by the first signal: the server drains
                    async with trio.open_nursery() as inner:
                        running: RunningFederation = await inner.start(serve_federation, settings)
                        typer.echo(f"federation listening on {running.url}")
                        typer.echo(f"TLS CA fingerprint {running.ca_fingerprint}")
                        typer.echo(f"state directory {running.state_dir}")
                nursery.cancel_scope.cancel()  # drained: stop listening for signals

            nursery.start_soon(server_then_stop)
            received = 0
            async for signum in signals:
                received += 1
                if received > 1:
                    raise _SecondSignal(signum)
                typer.echo(f"received {signal.Signals(signum).name}: draining", err=True)
                server_scope.cancel()


@token_app.command("create")
def token_create(
    cluster: Annotated[str, typer.Option("--cluster", help="name of the cluster that may join")],
    ttl: Annotated[str, typer.Option("--ttl", help="lifetime, e.g. 30m, 1h")] = "1h",
    config: ConfigOption = None,
) -> None:
    """Print a single-use join token for CLUSTER (give it to that cluster's gateway)."""
    import trio

    from federation.service import create_join_token, ensure_federation_tls
    from federation.store import open_store

    lifetime = parse_duration(ttl).total_seconds()
    settings = _config(config)
    tls = ensure_federation_tls(settings.resolved_state_dir / "tls", hosts=settings.tls_hosts)
    token, record = create_join_token(
        federation_url=settings.url_for_port(settings.listen_port),
        ca_sha256=tls.fingerprint,
        cluster=cluster,
        now=time.time(),
        ttl_s=lifetime,
    )

    async def store_it() -> None:
        async with open_store(settings.resolved_store_url) as store:
            await store.create_join_token(
                record.token_id, record.cluster, record.digest, record.expires_at
            )

    trio.run(store_it)
    typer.echo(token.encode())


def _fetch_status(settings: FederationConfig, url: str | None) -> FederationStatus:
    from federation.model import FederationStatus
    from isthmus.commands._federation_http import admin_get

    return FederationStatus.model_validate_json(admin_get(settings, "/v1/status", url))


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}s"


def _print_table(status: FederationStatus) -> None:
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    table = Table(title="federation clusters")
    for column in (
        "cluster",
        "locality",
        "lease",
        "last report",
        "bundle seq",
        "bundle expiry",
        "snapshot",
        "acked",
        "nack",
    ):
        table.add_column(column)
    for row in status.clusters:
        where = "/".join(
            p for p in (row.locality.cloud, row.locality.region, row.locality.zone) if p
        )
        lease = row.lease + (
            f" (unreachable from {', '.join(row.unreachable_from)})" if row.unreachable_from else ""
        )
        expiry = (
            "-"
            if row.bundle_expires_at is None
            else datetime.fromtimestamp(row.bundle_expires_at, UTC).strftime("%Y-%m-%d")
        )
        nack = "" if row.nacked_version is None else f"v{row.nacked_version}: {row.nack_error}"
        table.add_row(
            row.cluster,
            where,
            lease,
            _age(row.last_report_age_s),
            str(row.bundle_sequence or "-"),
            expiry,
            str(row.snapshot_version or "-"),
            str(row.acked_version or "-"),
            nack,
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped output: do not truncate columns to 80
    console.print(table)


def status(
    federation: Annotated[
        str | None, typer.Option("--federation", help="federation URL (default from config)")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    config: ConfigOption = None,
) -> None:
    """Clusters with locality, lease state, last report age, bundle and snapshot versions."""
    if output not in ("table", "json"):
        raise typer.BadParameter("must be 'table' or 'json'", param_hint="'--output'")
    result = _fetch_status(_config(config), federation)
    if output == "json":
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        _print_table(result)


def register(app: typer.Typer) -> None:
    """Attach ``isthmus federation ...`` and ``isthmus status``."""
    app.add_typer(federation_app, name="federation")
    app.command("status")(status)
