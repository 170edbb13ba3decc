"""``isthmus gateway run``: the east-west gateway process (optionally N workers)."""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from isthmus.errors import IsthmusError

ACCESS_LOGGER = "isthmus.access"


def configure_logging(level: int = logging.INFO) -> None:
    """Access log lines (already JSON) go to stdout, one per line; everything else to stderr."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not access.handlers:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(out)
        access.propagate = False
    access.setLevel(logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _worker_command(config: Path, index: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "isthmus",
        "gateway",
        "run",
        "--config",
        str(config),
        "--workers",
        "1",
        "--worker-index",
        str(index),
    ]


def _bind_error(err: BaseException) -> OSError | None:
    """The socket error behind a failed start-up (possibly inside exception groups)."""
    if isinstance(err, OSError) and err.errno in (errno.EADDRINUSE, errno.EACCES):
        return err
    if isinstance(err, BaseExceptionGroup):
        for inner in err.exceptions:
            found = _bind_error(inner)
            if found is not None:
                return found
    return None


def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="gateway.yaml")],
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", min=1, help="worker processes sharing the ports"),
    ] = None,
    worker_index: Annotated[int | None, typer.Option("--worker-index", hidden=True)] = None,
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            help="single-use join token from 'isthmus federation token create' (first start "
            "only; the credentials are kept in the state directory)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Run the east-west gateway: inbound mTLS, outbound for local apps, admin API."""
    import trio

    from gateway.config import GatewayConfig
    from gateway.run import serve_gateway
    from gateway.workers import supervise_workers

    configure_logging(logging.DEBUG if verbose else logging.INFO)
    cfg = GatewayConfig.from_file(config)
    count = workers if workers is not None else cfg.workers
    if count > 1 and (join or cfg.join_token or cfg.federation is not None):
        raise IsthmusError(
            f"{config}: a federated gateway runs one worker for now (drop --workers or the "
            "federation settings)"
        )
    if count > 1:
        path = config.resolve()
        grace = cfg.limits.drain_timeout_s + 5.0
        listen = cfg.listeners
        admin = (listen.admin_bind or listen.bind, listen.admin_port) if listen.admin_port else None
        trio.run(
            lambda: supervise_workers(
                lambda index: _worker_command(path, index), count, grace_s=grace, admin=admin
            )
        )
        return
    supervised = worker_index is not None
    try:
        # a supervised worker k serves its admin API on admin_port + 1 + k; the supervisor
        # serves the merged one on admin_port
        offset = 0 if worker_index is None else worker_index + 1
        trio.run(
            lambda: serve_gateway(
                cfg, admin_port_offset=offset, reuse_port=supervised, join_token=join
            )
        )
    except KeyboardInterrupt:  # a second SIGINT/SIGTERM while draining: stop now
        raise typer.Exit(130) from None
    except (OSError, BaseExceptionGroup) as err:
        bind = _bind_error(err)
        if bind is None:
            raise
        ports = cfg.listeners
        raise IsthmusError(
            f"{config}: cannot listen ({bind.strerror}) on one of inbound_port "
            f"{ports.inbound_port}, outbound_port {ports.outbound_port}, admin_port "
            f"{ports.admin_port}; stop what uses it or change listeners.* in the config"
        ) from err


def register(app: typer.Typer) -> None:
    """Attach ``isthmus gateway``."""
    group = typer.Typer(help="The east-west gateway.", no_args_is_help=True)
    group.command("run")(run)
    app.add_typer(group, name="gateway")
