"""Fixtures for the proxy's trio drivers: one test PKI per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.proxy.certs import CA, Leaf, make_ca


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, Leaf, Leaf]:
    """(CA, server leaf, client leaf), SPIFFE-shaped URIs in two gateway identities."""
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory)
    server = ca.issue("gw-b", "spiffe://b.test/isthmus/gateway/b")
    client = ca.issue("gw-a", "spiffe://a.test/isthmus/gateway/a")
    return ca, server, client
