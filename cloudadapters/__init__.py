"""One adapter per cloud (aws, gcp, azure) and ``local``: discovery of gateway addresses,
peer-only firewall reconciliation and DNS weights, each a pure diff plus an executor."""

from cloudadapters.errors import CloudAdapterError

__all__ = ["CloudAdapterError"]
