"""The federation service and everything it is the authority on: wire models, trust,
store backends, health leases, placement, snapshots, the HTTP API and its client."""

from federation.errors import FederationError

__all__ = ["FederationError"]
