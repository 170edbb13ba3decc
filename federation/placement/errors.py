"""Errors of the placement engine; all are :class:`federation.errors.FederationError`."""

from __future__ import annotations

from federation.errors import FederationError


class PlacementError(FederationError):
    """Root of placement errors."""


class ScenarioError(PlacementError):
    """A scenario, change set or what-if refers to something undefined or impossible.

    ``field`` names the offending field (``services[checkout.shop].clusters``, ``--what-if``...).
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
