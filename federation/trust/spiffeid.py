"""SPIFFE ID and trust domain value types, validated per the SPIFFE ID specification.

A SPIFFE ID is ``spiffe://<trust-domain><path>``: the scheme is exactly ``spiffe``; the trust
domain is lowercase ``[a-z0-9.-_]`` (no port, no userinfo, at most 255 bytes); the path is empty
or ``/``-separated segments of ``[A-Za-z0-9.-_]`` with no empty, ``.`` or ``..`` segment and no
trailing slash; no query or fragment; at most 2048 bytes in total. Parsing is pure; every error is
a :class:`SpiffeIdError` naming the offending part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from federation.trust.errors import SpiffeIdError

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
MAX_TRUST_DOMAIN_BYTES = 255

_TD_CHARS = re.compile(r"[a-z0-9._-]+")
_SEGMENT_CHARS = re.compile(r"[A-Za-z0-9._-]+")


def _check_trust_domain(name: str, *, where: str | None = None) -> None:
    """Validate a trust domain name; ``where`` prefixes the message (the whole ID, if any)."""
    if where is None:
        where = "invalid trust domain"
    if not name:
        raise SpiffeIdError(f"{where}: trust domain is empty")
    if "@" in name:
        raise SpiffeIdError(f"{where}: trust domain {name!r} contains userinfo ('@')")
    if ":" in name:
        raise SpiffeIdError(f"{where}: trust domain {name!r} contains a port (':')")
    if len(name.encode()) > MAX_TRUST_DOMAIN_BYTES:
        raise SpiffeIdError(
            f"{where}: trust domain is {len(name.encode())} bytes, "
            f"longer than {MAX_TRUST_DOMAIN_BYTES}"
        )
    if not _TD_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not _TD_CHARS.fullmatch(c)})
        hint = " (trust domains must be lowercase)" if any(c.isupper() for c in bad) else ""
        raise SpiffeIdError(
            f"{where}: trust domain {name!r} contains invalid characters {''.join(bad)!r}{hint}; "
            "allowed: a-z 0-9 . - _"
        )


def _check_segment(segment: str, *, where: str) -> None:
    if segment == "":
        raise SpiffeIdError(f"{where}: path has an empty segment ('//' or a trailing '/')")
    if segment in (".", ".."):
        raise SpiffeIdError(f"{where}: path segment {segment!r} is not allowed")
    if not _SEGMENT_CHARS.fullmatch(segment):
        bad = sorted({c for c in segment if not _SEGMENT_CHARS.fullmatch(c)})
        raise SpiffeIdError(
            f"{where}: path segment {segment!r} contains invalid characters {''.join(bad)!r}; "
            "allowed: A-Z a-z 0-9 . - _"
        )


@dataclass(frozen=True, slots=True, order=True)
class TrustDomain:
    """A SPIFFE trust domain name such as ``aws-use1.isthmus``. ``str()`` gives the bare name."""

    name: str

    def __post_init__(self) -> None:
        _check_trust_domain(self.name)

    @classmethod
    def parse(cls, text: str) -> TrustDomain:
        """Accept ``example.org`` or ``spiffe://example.org`` (the trust domain's own ID)."""
        if "://" in text:
            spiffe_id = SpiffeId.parse(text)
            if spiffe_id.path:
                raise SpiffeIdError(f"{text!r}: a trust domain has no path, got {spiffe_id.path!r}")
            return spiffe_id.trust_domain
        return cls(text)

    @property
    def id(self) -> SpiffeId:
        """The trust domain's own SPIFFE ID, ``spiffe://<name>`` (used as the CA's URI SAN)."""
        return SpiffeId(self, "")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, order=True)
class SpiffeId:
    """A validated SPIFFE ID. ``path`` is ``""`` or starts with ``/``. ``str()`` gives the URI."""

    trust_domain: TrustDomain
    path: str = ""

    def __post_init__(self) -> None:
        where = f"SPIFFE ID path {self.path!r}"
        if self.path:
            if not self.path.startswith("/"):
                raise SpiffeIdError(f"{where}: path must start with '/'")
            for segment in self.path[1:].split("/"):
                _check_segment(segment, where=where)
        if len(str(self).encode()) > MAX_ID_BYTES:
            raise SpiffeIdError(f"SPIFFE ID is longer than {MAX_ID_BYTES} bytes")

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse ``spiffe://td/path``; raise :class:`SpiffeIdError` naming the bad part."""
        where = f"SPIFFE ID {text[:80]!r}"
        if not text:
            raise SpiffeIdError("SPIFFE ID is empty")
        if len(text.encode()) > MAX_ID_BYTES:
            raise SpiffeIdError(f"{where}: longer than {MAX_ID_BYTES} bytes")
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise SpiffeIdError(f"{where}: missing scheme, expected 'spiffe://'")
        if scheme != "spiffe":
            raise SpiffeIdError(f"{where}: scheme is {scheme!r}, expected 'spiffe' (lowercase)")
        if "#" in rest:
            raise SpiffeIdError(f"{where}: fragments ('#') are not allowed")
        if "?" in rest:
            raise SpiffeIdError(f"{where}: query strings ('?') are not allowed")
        authority, slash, path = rest.partition("/")
        _check_trust_domain(authority, where=where)
        if slash:
            path = "/" + path
            if path == "/":
                raise SpiffeIdError(f"{where}: trailing '/' after the trust domain")
            for segment in path[1:].split("/"):
                _check_segment(segment, where=where)
        return cls(TrustDomain(authority), path)

    @property
    def uri(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain.name}{self.path}"

    def member_of(self, trust_domain: TrustDomain) -> bool:
        return self.trust_domain == trust_domain


def gateway_id(trust_domain: TrustDomain | str, cluster: str) -> SpiffeId:
    """``spiffe://<td>/isthmus/gateway/<cluster>``: the identity of a cluster's gateway."""
    td = trust_domain if isinstance(trust_domain, TrustDomain) else TrustDomain(trust_domain)
    _check_segment(cluster, where=f"cluster name {cluster!r}")
    return SpiffeId(td, f"/isthmus/gateway/{cluster}")


def workload_id(trust_domain: TrustDomain | str, namespace: str, service_account: str) -> SpiffeId:
    """``spiffe://<td>/ns/<namespace>/sa/<service-account>``: a workload's identity."""
    td = trust_domain if isinstance(trust_domain, TrustDomain) else TrustDomain(trust_domain)
    _check_segment(namespace, where=f"namespace {namespace!r}")
    _check_segment(service_account, where=f"service account {service_account!r}")
    return SpiffeId(td, f"/ns/{namespace}/sa/{service_account}")
