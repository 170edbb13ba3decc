"""CONNECT-only services report their targets in ``tcp_endpoints``; placement must count them."""

from __future__ import annotations

from federation.model import HealthReport
from federation.service.placement_scenario import (
    healthy_percent,
    placement_report_key,
    service_health,
)


def tcp_report(up: int, down: int) -> HealthReport:
    targets: list[dict[str, object]] = [{"address": f"10.0.0.{i}:5432"} for i in range(up)]
    targets += [{"address": f"10.0.1.{i}:5432", "healthy": False} for i in range(down)]
    return HealthReport.model_validate(
        {
            "sequence": 1,
            "sent_at": 0,
            "services": [{"name": "db.shop", "tcp_endpoints": targets}],
        }
    )


def test_connect_only_service_counts_its_tcp_targets() -> None:
    report = tcp_report(up=3, down=1)
    assert service_health(report, "db.shop") == 0.75
    assert healthy_percent(report) == 75.0


def test_connect_only_service_all_down_is_zero_not_unknown() -> None:
    report = tcp_report(up=0, down=2)
    assert service_health(report, "db.shop") == 0.0
    assert healthy_percent(report) == 0.0


def test_tcp_target_health_change_replans() -> None:
    assert placement_report_key(tcp_report(2, 0)) != placement_report_key(tcp_report(1, 1))
