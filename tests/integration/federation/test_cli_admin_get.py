"""The CLI's one admin client (``isthmus status``, ``plan --federation``, ``explain``) against a
real federation: token and pinned CA from the state directory, errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from federation.model import FederationStatus
from federation.service.server import RunningFederation
from isthmus.commands._federation_http import admin_get
from isthmus.commands.federation_cmds import _fetch_status
from isthmus.errors import IsthmusError
from tests.integration.federation.conftest import fed_config


async def test_status_and_placement_share_one_admin_client(
    federation: RunningFederation, tmp_path: Path
) -> None:
    await federation.service.create_join_token("aws")  # any state; status needs none
    settings = fed_config(tmp_path)  # the same state directory as the running federation
    status = await trio.to_thread.run_sync(_fetch_status, settings, federation.url)
    assert isinstance(status, FederationStatus)
    body = await trio.to_thread.run_sync(admin_get, settings, "/v1/placement", federation.url)
    assert set(json.loads(body)) >= {"placements", "traffic", "unschedulable"}


async def test_refusal_carries_the_federations_message(
    federation: RunningFederation, tmp_path: Path
) -> None:
    settings = fed_config(tmp_path)
    with pytest.raises(IsthmusError) as caught:
        await trio.to_thread.run_sync(
            admin_get, settings, "/v1/placement/checkout.shop", federation.url
        )
    assert "(404)" in str(caught.value)
    assert "declare it (PUT /v1/services/checkout.shop)" in str(caught.value)


async def test_missing_admin_token_names_the_file(tmp_path: Path) -> None:
    settings = fed_config(tmp_path / "elsewhere")
    with pytest.raises(IsthmusError, match="cannot read the admin token"):
        await trio.to_thread.run_sync(admin_get, settings, "/v1/status", "https://127.0.0.1:9")
