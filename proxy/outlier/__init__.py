"""Outlier detection: passive (consecutive failures) and active (peer ``/readyz`` probes)."""

from proxy.outlier.detector import (
    Ejected,
    Outcome,
    OutlierDetector,
    OutlierSettings,
    Unejected,
    outcome_for_status,
)
from proxy.outlier.health import HealthChanged, HealthChecker, HealthCheckSettings

__all__ = [
    "Ejected",
    "HealthChanged",
    "HealthCheckSettings",
    "HealthChecker",
    "Outcome",
    "OutlierDetector",
    "OutlierSettings",
    "Unejected",
    "outcome_for_status",
]
