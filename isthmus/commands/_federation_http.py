"""The CLI's admin HTTP client for a running federation (``isthmus status``, ``isthmus plan
--federation``, ``isthmus explain``).

The admin token and the federation's TLS CA are read from the federation's state directory, so
these commands run where ``isthmus federation serve`` runs (or with its ``--config``); the CA is
pinned by fingerprint, not trusted from the system store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from isthmus.errors import IsthmusError

if TYPE_CHECKING:
    from federation.service.server import FederationConfig


def admin_get(settings: FederationConfig, path: str, url: str | None = None) -> bytes:
    """GET the admin route ``path`` of the federation at ``url`` (default: the config's own
    listen address) with the admin bearer token; the body of a 200 answer.

    Raises ``IsthmusError`` naming the file or URL and what to do when the token cannot be read,
    the federation cannot be reached, or it answers anything but 200 (with its error message).
    """
    import httpx

    from federation.service import ensure_federation_tls, pinned_client_context
    from federation.service.auth import ADMIN_TOKEN_FILE

    state = settings.resolved_state_dir
    try:
        admin = (state / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise IsthmusError(
            f"{state / ADMIN_TOKEN_FILE}: cannot read the admin token ({err.strerror}); "
            "run this where the federation's state directory is, or pass --config"
        ) from err
    tls = ensure_federation_tls(state / "tls", hosts=settings.tls_hosts)
    context = pinned_client_context(tls.ca_path.read_bytes(), tls.fingerprint)
    base = url or settings.url_for_port(settings.listen_port)
    try:
        with httpx.Client(base_url=base, verify=context, timeout=10) as client:
            response = client.get(path, headers={"authorization": f"Bearer {admin}"})
    except httpx.HTTPError as err:
        raise IsthmusError(f"{base}: cannot reach the federation ({err})") from err
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        raise IsthmusError(f"{base}{path}: refused ({response.status_code}): {message}")
    return response.content
