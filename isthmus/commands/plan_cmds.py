"""``isthmus plan``: run the placement engine offline on a scenario file, with what-ifs, or
show a running federation's live decisions (``--federation``); ``isthmus explain SERVICE``.

Live commands read the admin token and pin the TLS CA from the federation's state directory,
as ``isthmus status`` does.

Invalid scenarios and what-ifs raise :class:`federation.FederationError` subclasses whose
message names the file and field; :func:`isthmus.cli.main` prints them as one ``error:`` line
and exits 1.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from federation.model.base import load_model_file
from federation.model.placement import Scenario
from federation.placement import (
    WHAT_IF_SYNTAX,
    PlacementPlan,
    TrafficLevel,
    placement_diff,
    plan,
    plan_to_json,
    replan,
    what_if_changes,
)


class OutputFormat(StrEnum):
    """How ``isthmus plan`` prints its result."""

    TABLE = "table"
    JSON = "json"


def register(app: typer.Typer) -> None:
    """Attach ``isthmus plan`` and ``isthmus explain`` to ``app``."""
    app.command("plan")(plan_command)
    app.command("explain")(explain_command)


def plan_command(  # noqa: PLR0917  (typer: one parameter per option)
    input_path: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Scenario YAML (schema: docs/placement.md)."),
    ] = None,
    what_if: Annotated[
        list[str] | None,
        typer.Option("--what-if", help=f"Change to try, repeatable: {WHAT_IF_SYNTAX}."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.TABLE,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="Only show these services (repeatable)."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Only show traffic from these clusters (repeatable)."),
    ] = None,
    federation: Annotated[
        str | None,
        typer.Option("--federation", help="Show a running federation's live decisions (URL)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="federation.yaml (with --federation)")
    ] = None,
) -> None:
    """Plan where services run and how their traffic fails over, and explain why."""
    if (input_path is None) == (federation is None):
        raise typer.BadParameter(
            "give exactly one of --input or --federation", param_hint="--input"
        )
    if federation is not None:
        if what_if:
            raise typer.BadParameter("what-ifs need --input", param_hint="--what-if")
        show_live_plan(federation, config, output.value, service or [], source or [])
        return
    assert input_path is not None
    what_if = what_if or []
    scenario = load_model_file(Scenario, input_path)
    baseline = plan(scenario)
    result = replan(baseline, what_if_changes(baseline, what_if)) if what_if else baseline
    services = _selected(result, service or [])
    sources = _sources(result, source or [])
    if output is OutputFormat.JSON:
        data = plan_to_json(result, services, sources)
        if what_if:
            data["what_if"] = {
                "applied": list(what_if),
                "moved": placement_diff(baseline, result),
            }
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    _print_tables(result, services, sources, baseline if what_if else None)


def _selected(result: PlacementPlan, wanted: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(wanted) - set(result.services))
    if unknown:
        raise typer.BadParameter(f"unknown service {unknown[0]!r}", param_hint="--service")
    return tuple(sorted(wanted)) if wanted else result.services


def _sources(result: PlacementPlan, wanted: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(wanted) - set(result.clusters))
    if unknown:
        raise typer.BadParameter(f"unknown cluster {unknown[0]!r}", param_hint="--source")
    return tuple(sorted(wanted)) if wanted else result.clusters


def _levels_text(levels: tuple[TrafficLevel, ...]) -> str:
    parts = []
    for rank, level in enumerate(levels):
        weights = ", ".join(f"{name} {weight}" for name, weight in level.weights.items())
        parts.append(f"P{rank} {level.load}%: {weights}")
    return "\n".join(parts) or "-"


def _print_tables(
    result: PlacementPlan,
    services: tuple[str, ...],
    sources: tuple[str, ...],
    baseline: PlacementPlan | None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    placements = Table(title="Placements", show_lines=False)
    for column in ("service", "replicas per cluster", "unschedulable"):
        placements.add_column(column)
    for name in services:
        where = ", ".join(f"{c}×{n}" for c, n in result.placement(name).items()) or "-"
        problem = result.unschedulable.get(name)
        placements.add_row(name, where, f"[red]{problem.message}[/red]" if problem else "")
    console.print(placements)
    traffic = Table(title="Traffic (priority levels per source cluster; load % then weights)")
    for column in ("service", "source", "levels"):
        traffic.add_column(column)
    for name in services:
        for source, levels in result.traffic_table(name, sources).items():
            traffic.add_row(name, source, _levels_text(levels))
    console.print(traffic)
    reasons = Table(title="Explanations")
    for column in ("service", "cluster", "chosen", "score", "reason"):
        reasons.add_column(column)
    for name in services:
        for cluster, item in result.explain(name).items():
            mark = f"[green]yes ({item.replicas})[/green]" if item.chosen else "no"
            reasons.add_row(name, cluster, mark, f"{item.score['total']:.3f}", item.reason)
    console.print(reasons)
    if baseline is not None:
        moved = placement_diff(baseline, result)
        console.print("[bold]What-if moved:[/bold]" if moved else "What-if moved nothing.")
        for name, clusters in moved.items():
            for cluster, change in clusters.items():
                console.print(f"  {name} on {cluster}: {change['before']} -> {change['after']}")


# --- live decisions from a running federation ------------------------------------------------


def _admin_get(federation: str | None, config: Path | None, path: str) -> dict[str, Any]:
    """GET an admin route of the federation as JSON (see ``admin_get``)."""
    from isthmus.commands._federation_http import admin_get
    from isthmus.commands.federation_cmds import _config

    data: dict[str, Any] = json.loads(admin_get(_config(config), path, federation))
    return data


def show_live_plan(
    federation: str, config: Path | None, output: str, services: list[str], sources: list[str]
) -> None:
    """``isthmus plan --federation URL``: the leader's last decisions, offline JSON shape."""
    data = _admin_get(federation, config, "/v1/placement?explanations=true")
    wanted = set(services) or set(data["placements"])
    unknown = sorted(wanted - set(data["placements"]))
    if unknown:
        raise typer.BadParameter(f"unknown service {unknown[0]!r}", param_hint="--service")
    for key in ("placements", "traffic", "explanations", "unschedulable"):
        data[key] = {k: v for k, v in data.get(key, {}).items() if k in wanted}
    if sources:
        data["traffic"] = {
            k: {src: v for src, v in per.items() if src in sources}
            for k, per in data["traffic"].items()
        }
    if output == OutputFormat.JSON:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    table = Table(title="Placements (live)")
    for column in ("service", "replicas per cluster", "unschedulable"):
        table.add_column(column)
    for name, where in sorted(data["placements"].items()):
        problem = data["unschedulable"].get(name)
        text = ", ".join(f"{c}×{n}" for c, n in where.items()) or "-"
        table.add_row(name, text, problem["message"] if problem else "")
    console.print(table)
    traffic = Table(title="Traffic (priority levels per source cluster; load % then weights)")
    for column in ("service", "source", "levels"):
        traffic.add_column(column)
    for name, per in sorted(data["traffic"].items()):
        for source, levels in sorted(per.items()):
            text = "\n".join(
                f"P{rank} {lv['load']}%: " + ", ".join(f"{c} {w}" for c, w in lv["weights"].items())
                for rank, lv in enumerate(levels)
            )
            traffic.add_row(name, source, text or "-")
    console.print(traffic)


def explain_command(
    service: Annotated[str, typer.Argument(help="'<service>.<namespace>'")],
    federation: Annotated[
        str | None, typer.Option("--federation", help="federation URL (default from config)")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.TABLE,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="federation.yaml")] = None,
) -> None:
    """Why the live plan put SERVICE where it is: per cluster, in words and score by objective."""
    data = _admin_get(federation, config, f"/v1/placement/{service}")
    if output == OutputFormat.JSON:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    where = ", ".join(f"{c}×{n}" for c, n in data.get("placement", {}).items()) or "nowhere"
    console.print(f"[bold]{service}[/bold] runs on {where}.")
    problem = data.get("unschedulable")
    if problem:
        console.print(f"[red]Unschedulable:[/red] {problem['message']}")
    explanations: dict[str, Any] = data.get("explanations", {})
    objectives = sorted({k for item in explanations.values() for k in item.get("score", {})})
    table = Table(title="Why (score by objective; higher is better)")
    for column in ("cluster", "chosen", "reason", *objectives):
        table.add_column(column)
    for cluster, item in sorted(explanations.items()):
        chosen = f"yes ({item['replicas']})" if item["chosen"] else "no"
        scores = [f"{item.get('score', {}).get(k, 0.0):.3f}" for k in objectives]
        table.add_row(cluster, chosen, item["reason"], *scores)
    console.print(table)
