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
from federation.model.placement import (
    ClusterSpec,
    EgressDefaults,
    FailoverPolicy,
    HealthState,
    LatencyDefaults,
    NetworkOverride,
    NetworkSpec,
    ObjectiveWeights,
    Scenario,
    ServicePolicy,
    SpreadPolicy,
)
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
    "ClusterSpec",
    "ClusterStatus",
    "Cost",
    "EgressDefaults",
    "EndpointHealth",
    "FailoverPolicy",
    "FaultPolicy",
    "FederationStatus",
    "FrozenModel",
    "HealthReport",
    "HealthState",
    "JoinRequest",
    "JoinResponse",
    "LatencyDefaults",
    "LocalEndpoint",
    "Locality",
    "ModelLoadError",
    "NetworkOverride",
    "NetworkSpec",
    "ObjectiveWeights",
    "PeerGateway",
    "PeerProbe",
    "PriorityLevel",
    "RetryPolicy",
    "RoutingModel",
    "Scenario",
    "ServiceHealth",
    "ServicePolicy",
    "ServiceRoute",
    "Snapshot",
    "SpreadPolicy",
    "load_model_file",
]
