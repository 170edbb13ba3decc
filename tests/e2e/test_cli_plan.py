"""``isthmus plan`` through its real typer command, registered the way the root CLI does it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from federation import FederationError
from isthmus.commands import plan_cmds

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenario-three-clouds.yaml"


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer(pretty_exceptions_enable=False)

    @root.callback()
    def _root() -> None:
        """Test root: commands attach exactly as in isthmus.cli."""

    plan_cmds.register(root)
    return root


def run(app: typer.Typer, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["plan", *args])
    return result.exit_code, result.output, result.exception


def test_json_output_has_the_documented_shape(app: typer.Typer) -> None:
    code, out, _ = run(app, "--input", str(EXAMPLE), "--output", "json")
    assert code == 0, out
    data = json.loads(out)
    assert {"placements", "traffic", "explanations", "unschedulable"} <= set(data)
    assert set(data["placements"]) == {"catalog.shop", "checkout.shop"}
    checkout = data["placements"]["checkout.shop"]
    assert sum(checkout.values()) == 3 and len(checkout) >= 2  # spread over 2+ clouds
    assert not set(data["placements"]["catalog.shop"]) - {"gcp-euw1", "azure-weu"}
    for service, per_source in data["traffic"].items():
        assert set(per_source) == {"aws-use1", "gcp-euw1", "azure-weu"}
        for levels in per_source.values():
            assert levels, service
            assert sum(level["load"] for level in levels) == 100
            for level in levels:
                assert sum(level["weights"].values()) == 100
                assert set(level["weights"]) <= set(data["placements"][service])
    why = data["explanations"]["catalog.shop"]["aws-use1"]
    assert why["chosen"] is False and why["constraint"] == "allowed_regions"
    assert set(why["score"]) == {"cost", "latency", "headroom", "total"}


def test_what_if_down_moves_replicas_and_reports_the_move(app: typer.Typer) -> None:
    code, out, _ = run(app, "--input", str(EXAMPLE), "-o", "json", "--what-if", "down:aws-use1")
    assert code == 0, out
    data = json.loads(out)
    assert "aws-use1" not in data["placements"]["checkout.shop"]
    assert data["what_if"]["applied"] == ["down:aws-use1"]
    assert data["what_if"]["moved"]["checkout.shop"]["aws-use1"]["after"] == 0
    for levels in data["traffic"]["checkout.shop"].values():
        assert all("aws-use1" not in level["weights"] for level in levels)


def test_repeated_what_ifs_combine(app: typer.Typer) -> None:
    code, out, _ = run(
        app,
        "--input",
        str(EXAMPLE),
        "-o",
        "json",
        "--what-if",
        "drain:gcp",
        "--what-if",
        "load:azure-weu=29",
    )
    assert code == 0, out
    data = json.loads(out)
    assert "gcp-euw1" not in json.dumps(data["placements"])
    catalog = data["unschedulable"]["catalog.shop"]
    assert (catalog["constraint"], catalog["missing"]) == ("spread.min_domains", 3)
    assert "only 1 region(s) have an allowed cluster with room" in catalog["message"]


def test_service_and_source_filters_limit_the_json(app: typer.Typer) -> None:
    code, out, _ = run(
        app, "--input", str(EXAMPLE), "-o", "json", "-s", "checkout.shop", "--source", "gcp-euw1"
    )
    assert code == 0, out
    data = json.loads(out)
    assert list(data["placements"]) == ["checkout.shop"]
    assert list(data["traffic"]["checkout.shop"]) == ["gcp-euw1"]
    code, out, _ = run(app, "--input", str(EXAMPLE), "--source", "nowhere-1")
    assert code == 2 and "nowhere-1" in out


def test_table_output_shows_placements_traffic_and_reasons(app: typer.Typer) -> None:
    code, out, _ = run(app, "--input", str(EXAMPLE), "--service", "catalog.shop")
    assert code == 0, out
    assert "Placements" in out and "Explanations" in out
    assert "data residency" in out
    assert "checkout.shop" not in out


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (("capacity: 40", "capacity: -1", 1), "clusters.0.capacity"),
        (("cluster_selector: {tier: prod}", "clusters: [aws-use1, nope-1]", 1), "clusters"),
        (("order: [gcp-euw1, azure-weu]", "order: [gcp-euw1, nowhere]", 1), "failover.order"),
        (("stickiness: 0.05", "stickiness: 0.05\ncolour: blue", 1), "colour"),
        (
            (
                "objectives: {cost: 1, latency: 2, headroom: 0.5}",
                "objectives: {cost: 0, latency: 0, headroom: 0}",
                1,
            ),
            "objectives",
        ),
    ],
)
def test_invalid_scenario_fails_with_one_line_naming_the_field(
    app: typer.Typer, tmp_path: Path, patch: tuple[str, str, int], field: str
) -> None:
    text = EXAMPLE.read_text()
    assert patch[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(*patch))
    code, _, error = run(app, "--input", str(bad))
    assert code != 0
    assert isinstance(error, FederationError)
    message = str(error)
    assert "\n" not in message
    assert str(bad) in message and field in message


def test_unknown_what_if_target_is_named(app: typer.Typer) -> None:
    code, _, error = run(app, "--input", str(EXAMPLE), "--what-if", "down:gcp-nowhere")
    assert code != 0
    assert isinstance(error, FederationError)
    assert "--what-if" in str(error) and "gcp-nowhere" in str(error)


def test_a_service_blocked_until_another_moves_away_still_gets_placed(app: typer.Typer) -> None:
    # gcp-euw1 keeps 1 free unit: catalog (planned first) only fits there once checkout leaves
    code, out, _ = run(app, "--input", str(EXAMPLE), "-o", "json", "--what-if", "load:gcp-euw1=39")
    assert code == 0, out
    data = json.loads(out)
    assert data["unschedulable"] == {}
    assert data["placements"]["catalog.shop"] == {"azure-weu": 2, "gcp-euw1": 1}
    assert "gcp-euw1" not in data["placements"]["checkout.shop"]


def _isthmus(*args: str, seed: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-m", "isthmus", "plan", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_installed_cli_prints_identical_bytes_across_processes_and_one_error_line(
    tmp_path: Path,
) -> None:
    args = ("--input", str(EXAMPLE), "-o", "json", "--what-if", "down:gcp-euw1")
    first, second = _isthmus(*args, seed="1"), _isthmus(*args, seed="2")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("capacity: 30", "capacity: -5"))
    failed = _isthmus("--input", str(bad), seed="1")
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "clusters.2.capacity" in lines[0]
