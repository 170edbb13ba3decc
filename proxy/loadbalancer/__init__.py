"""Load balancing: priority levels with Envoy-style spill and panic, then weighted
power-of-two-choices least-request within the chosen level."""

from proxy.loadbalancer.picker import (
    NO_ENDPOINTS,
    NO_HEALTHY_UPSTREAM,
    NO_UNTRIED_UPSTREAM,
    LoadBalancer,
    Pick,
)
from proxy.loadbalancer.priority import (
    DEFAULT_OVERPROVISIONING,
    DEFAULT_PANIC_THRESHOLD,
    priority_load,
)

__all__ = [
    "DEFAULT_OVERPROVISIONING",
    "DEFAULT_PANIC_THRESHOLD",
    "NO_ENDPOINTS",
    "NO_HEALTHY_UPSTREAM",
    "NO_UNTRIED_UPSTREAM",
    "LoadBalancer",
    "Pick",
    "priority_load",
]
