"""Wire-format models shared by the federation, the gateway and the cloud adapters.

Every model is a frozen pydantic model that rejects unknown fields: the same classes validate
YAML files on disk, the federation's HTTP API and what terraform renders.
"""

from federation.model.api import (
    Ack,
    BundleUpdateRequest,
    ClusterStatus,
    Cost,
    EndpointHealth,
    FederationStatus,
    HealthReport,
    JoinRequest,
    JoinResponse,
    PeerProbe,
    ServiceHealth,
    Snapshot,
)
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
    "Ack",
    "BundleUpdateRequest",
    "ClusterStatus",
    "Cost",
    "EndpointHealth",
    "FaultPolicy",
    "FederationStatus",
    "FrozenModel",
    "HealthReport",
    "JoinRequest",
    "JoinResponse",
    "LocalEndpoint",
    "Locality",
    "ModelLoadError",
    "PeerGateway",
    "PeerProbe",
    "PriorityLevel",
    "RetryPolicy",
    "RoutingModel",
    "ServiceHealth",
    "ServiceRoute",
    "Snapshot",
    "load_model_file",
]
