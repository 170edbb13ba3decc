"""Routing deltas: a new routing told as what changed against one the gateway already holds.

A health flip changes one weight or health share per service; re-sending a cluster's whole
routing (23 KiB at 100 clusters, 230 KiB at 1,000) for it is most of a push. A delta is the new
routing's JSON object with

* ``version`` (always) and every other top-level field whose value changed (whole);
* ``peers`` / ``services`` only when the list changed, as a list of *entries*: an object is a new
  or changed element (whole), ``[i, j]`` stands for the base's elements ``i`` to ``j - 1``
  (unchanged, in that order).

:func:`routing_delta` computes it from two routings as JSON values (the federation's side);
:func:`apply_delta` rebuilds the new :class:`RoutingModel` from the base model (the gateway's
side): unchanged elements are the base's already validated objects, new ones and the whole model
are validated as a full routing is, so the result equals the full routing's model. Pure.
"""

from __future__ import annotations

import json
from typing import Any

from federation.model.routing import RoutingModel

#: The list fields sent element-wise, and the key naming an element.
LIST_KEYS = {"peers": "cluster", "services": "name"}


def _same(a: Any, b: Any) -> bool:
    """Equal including the order of object keys (``==`` on dicts ignores it, and the gateway
    must end with byte-for-byte the routing a full push gives)."""
    return a == b and json.dumps(a) == json.dumps(b)


def _list_delta(base: list[Any], new: list[Any], key: str) -> list[Any] | None:
    """Entries rebuilding ``new`` from ``base``; ``None`` if the lists are not element lists."""
    if not all(isinstance(item, dict) for item in base):
        return None
    index = {item.get(key): i for i, item in enumerate(base)}
    entries: list[Any] = []
    for item in new:
        if not isinstance(item, dict):
            return None
        i = index.get(item.get(key))
        if i is not None and _same(base[i], item):
            last = entries[-1] if entries else None
            if isinstance(last, list) and last[1] == i:
                last[1] = i + 1
            else:
                entries.append([i, i + 1])
        else:
            entries.append(item)
    return entries


def routing_delta(base: Any, new: Any) -> dict[str, Any] | None:
    """The delta from routing ``base`` to ``new`` (both JSON values as ``json.loads`` gives
    them), or ``None`` when they are not routings of the same shape (send the full one)."""
    if not isinstance(base, dict) or not isinstance(new, dict) or base.keys() != new.keys():
        return None
    if "version" not in new:
        return None
    delta: dict[str, Any] = {"version": new["version"]}
    for name, value in new.items():
        old = base[name]
        if name == "version" or _same(old, value):
            continue
        key = LIST_KEYS.get(name)
        if key is not None and isinstance(old, list) and isinstance(value, list):
            entries = _list_delta(old, value, key)
            if entries is None:
                return None
            delta[name] = entries
        else:
            delta[name] = value
    return delta


def _expand(base: tuple[Any, ...], entries: object, field: str) -> list[Any]:
    if not isinstance(entries, list):
        raise ValueError(f"delta {field}: expected a list of entries")
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict):
            out.append(entry)
            continue
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and all(type(i) is int for i in entry)
            and 0 <= entry[0] < entry[1] <= len(base)
        ):
            out.extend(base[entry[0] : entry[1]])
            continue
        raise ValueError(
            f"delta {field}: {entry!r} is neither an element nor a range [i, j] of the "
            f"base's {len(base)} elements"
        )
    return out


def apply_delta(base: RoutingModel, delta: dict[str, Any]) -> RoutingModel:
    """The routing ``delta`` describes against ``base``. Raises :class:`ValueError` for a
    malformed delta and :class:`pydantic.ValidationError` for a routing that is not valid."""
    fields: dict[str, Any] = {name: getattr(base, name) for name in RoutingModel.model_fields}
    for name, value in delta.items():
        if name not in fields:
            raise ValueError(f"delta: unknown routing field {name!r}")
        if name in LIST_KEYS:
            fields[name] = _expand(getattr(base, name), value, name)
        else:
            fields[name] = value
    if "version" not in delta:
        raise ValueError("delta: no version")
    return RoutingModel.model_validate(fields)
