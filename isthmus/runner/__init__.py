"""The embedded runner behind ``isthmus up``: local clusters, their gateways and demo backends."""

from isthmus.runner.topology import (
    ClusterSpec,
    ServiceSpec,
    routing_model_for,
    write_local_federation,
    write_routing_file,
)

__all__ = [
    "ClusterSpec",
    "ServiceSpec",
    "routing_model_for",
    "write_local_federation",
    "write_routing_file",
]
