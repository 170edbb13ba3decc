"""Wire-format models shared by the federation, the gateway and the cloud adapters.

Every model is a frozen pydantic model that rejects unknown fields: the same classes validate
YAML files on disk, the federation's HTTP API and what terraform renders.
"""

from federation.model.base import FrozenModel, ModelLoadError, load_model_file
from federation.model.routing import (
    FaultPolicy,
    LocalEndpoint,
    Locality,
    PeerGateway,
    PriorityLevel,
    RetryPolicy,
    RoutingModel,
    ServiceRoute,
)

__all__ = [
    "FaultPolicy",
    "FrozenModel",
    "LocalEndpoint",
    "Locality",
    "ModelLoadError",
    "PeerGateway",
    "PriorityLevel",
    "RetryPolicy",
    "RoutingModel",
    "ServiceRoute",
    "load_model_file",
]
