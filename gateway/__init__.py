"""The east-west gateway process: snapshot to routing table, identity, policy, admin API."""

from gateway.errors import GatewayError

__all__ = ["GatewayError"]
