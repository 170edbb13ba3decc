"""``isthmus plan``: run the placement engine offline on a scenario file, with what-ifs.

Invalid scenarios and what-ifs raise :class:`federation.FederationError` subclasses whose
message names the file and field; :func:`isthmus.cli.main` prints them as one ``error:`` line
and exits 1.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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
    """Attach ``isthmus plan`` to ``app``."""
    app.command("plan")(plan_command)


def plan_command(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="Scenario YAML (schema: docs/placement.md).")
    ],
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
) -> None:
    """Plan where services run and how their traffic fails over, and explain why."""
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
