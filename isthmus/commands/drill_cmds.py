"""``isthmus drill``: chaos against the running ``isthmus up`` (through its control endpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

drill_app = typer.Typer(
    help="Break the running 'isthmus up' on purpose: kill, partition, slow, heal.",
    no_args_is_help=True,
)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="state directory of the running isthmus up"),
]


def parse_delay(text: str) -> float:
    """``200ms``, ``1.5s`` or a bare number of milliseconds -> seconds. Raises BadParameter."""
    value = text.strip().lower()
    try:
        if value.endswith("ms"):
            seconds = float(value[:-2]) / 1000
        elif value.endswith("s"):
            seconds = float(value[:-1])
        else:
            seconds = float(value) / 1000
    except ValueError as err:
        raise typer.BadParameter(f"{text!r}: write a delay like 200ms or 1.5s") from err
    if not 0 <= seconds <= 60:
        raise typer.BadParameter(f"{text!r}: the delay must be between 0 and 60 s")
    return seconds


def _call(home: Path | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    from isthmus.commands.up_cmds import isthmus_home
    from isthmus.errors import IsthmusError
    from isthmus.runner.lock import running_up

    info = running_up(home if home is not None else isthmus_home())
    headers = {"authorization": f"Bearer {info['control_token']}"}
    try:
        response = httpx.request(
            method, f"{info['control_url']}{path}", json=body, headers=headers, timeout=30
        )
    except httpx.HTTPError as err:
        raise IsthmusError(
            f"cannot reach isthmus up (pid {info.get('pid')}) at {info['control_url']}: {err}"
        ) from err
    data = response.json()
    if response.status_code != 200:
        raise IsthmusError(f"drill refused: {data.get('error', response.text)}")
    return data


def _drill(home: Path | None, kind: str, body: dict[str, Any]) -> None:
    typer.echo(_call(home, "POST", f"/v1/drills/{kind}", body)["message"])


@drill_app.command("kill-cluster")
def kill_cluster(
    cluster: Annotated[str, typer.Argument(help="cluster to kill, e.g. gcp-euw1")],
    home: HomeOption = None,
) -> None:
    """Stop a cluster's gateway and replicas; its lease expires and traffic moves."""
    _drill(home, "kill-cluster", {"cluster": cluster})


@drill_app.command("partition")
def partition(
    a: Annotated[str, typer.Argument(help="one cluster")],
    b: Annotated[str, typer.Argument(help="the other cluster")],
    home: HomeOption = None,
) -> None:
    """Make two clusters' gateways refuse each other (a link down, both clusters up)."""
    _drill(home, "partition", {"a": a, "b": b})


@drill_app.command("slow")
def slow(
    cluster: Annotated[str, typer.Argument(help="cluster whose gateway serves slowly")],
    delay: Annotated[str, typer.Option("--delay", help="added per request, e.g. 200ms")] = "200ms",
    home: HomeOption = None,
) -> None:
    """Add a fixed delay to every request a cluster's gateway serves from peers."""
    _drill(home, "slow", {"cluster": cluster, "delay_ms": parse_delay(delay) * 1000})


@drill_app.command("heal")
def heal(home: HomeOption = None) -> None:
    """Undo every drill: restart killed clusters (same identity), lift partitions and delays."""
    _drill(home, "heal", {})


@drill_app.command("status")
def status(
    home: HomeOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """Clusters, drills in force and the traffic generator's counts."""
    state = _call(home, "GET", "/v1/state")
    if output == "json":
        typer.echo(json.dumps(state, indent=2))
        return
    for name, c in state["clusters"].items():
        up = "up  " if c["running"] else "DOWN"
        typer.echo(f"{name:<12} {up} replicas: {', '.join(c['replicas']) or '-'}  {c['drills']}")
    for flow in state["traffic"]:
        typer.echo(
            f"  {flow['source']:>10} -> {flow['service']:<14} ok {flow['ok']:>6} "
            f"failed {flow['failed']:>4}  {flow['mean_latency_ms']:>7} ms  {flow['answered_by']}"
        )


def register(app: typer.Typer) -> None:
    """Attach the ``drill`` command group."""
    app.add_typer(drill_app, name="drill")
