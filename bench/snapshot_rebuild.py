"""CPU cost of one snapshot rebuild at N clusters, pure (no store, no HTTP, no event loop).

    .venv/bin/python bench/snapshot_rebuild.py                       # N = 100 and 1,000
    .venv/bin/python bench/snapshot_rebuild.py --compare /tmp/base   # A/B against another tree

Each of N clusters exports one service with one endpoint and its own ~1.2 KiB trust bundle
(the shape of ``bench.convergence``'s fleet). After a first build, cluster ``g00000``'s
endpoint turns unhealthy, so every other cluster's routing changes: the rebuild then plans,
encodes (the document the store keeps) and stamps (served body + gzip) every changed snapshot,
as :class:`~federation.service.publisher.SnapshotPublisher` does. Printed: CPU ms per rebuild
(``time.process_time``) split in plan / encode / store (``--store``: ``put_snapshots`` on a
temporary SQLite file, all threads) / stamp, the best of ``--repeat`` runs.

``--compare DIR`` runs the same measurement with ``DIR`` (another checkout, e.g. ``git archive
main | tar -x -C DIR``) first on the import path, in a subprocess, alternating with this tree.
It imports nothing from ``bench`` so it measures whichever ``federation`` is on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any


def _fleet(n: int, healthy_first: bool) -> tuple[list[Any], Any, dict[str, str]]:
    from federation.model.api import EndpointHealth, ServiceHealth
    from federation.model.routing import Locality
    from federation.service.leases import Reachability
    from federation.service.snapshots import MemberView

    members = []
    for i in range(n):
        name = f"g{i:05d}"
        endpoint = EndpointHealth(address=f"127.0.0.1:{20000 + i}", healthy=healthy_first or i != 0)
        service = ServiceHealth(name="echo.bench", endpoints=(endpoint,), allowed_sources=("*",))
        members.append(
            MemberView(
                name,
                f"{name}.bench.isthmus.test",
                Locality(cloud="local", region=f"r{i % 8}"),
                (f"127.0.0.1:{20000 + i}",),
                (service,),
            )
        )
    reach = Reachability({m.name: "healthy" for m in members})
    key = "x" * 1100  # the size of one cluster's bundle (a CA root and a jwt-svid key)
    bundles = {m.trust_domain: json.dumps({"keys": [{"k": key, "td": m.name}]}) for m in members}
    return members, reach, bundles


def _rebuild(
    state: dict[str, Any], members: list[Any], reach: Any, bundles: dict[str, str]
) -> dict[str, float]:
    """One rebuild as the publisher runs it; returns CPU seconds per step."""
    from federation.service.snapshot_bytes import stamp

    encoder = state["encoder"]
    encoded: dict[str, Any]
    t0 = time.process_time()
    if "planner" in state:
        from federation.service.snapshot_plan import encode_planned

        changed = state["planner"].plan(members, reach, bundles, {}, state["digests"])
        t1 = time.process_time()
        encoded = encode_planned(changed, encoder, bundles, {})
    else:
        from federation.service.snapshots import plan_snapshots

        changed = plan_snapshots(members, reach, bundles, {}, state["digests"])
        t1 = time.process_time()
        encoded = {name: encoder.content(p.snapshot) for name, p in changed.items()}
    t2 = time.process_time()
    write_s = _store_write(state, encoded) if "store" in state else 0.0
    t2 += write_s
    state["version"] += 1
    for name, item in encoded.items():
        content: Any = getattr(item, "content", item)
        stamp(content, state["version"])
        state["digests"][name] = changed[name].digest
    t3 = time.process_time()
    return {
        "plan": t1 - t0,
        "encode": t2 - t1 - write_s,
        "store": write_s,
        "stamp": t3 - t2,
        "changed": len(changed),
    }


def _store_write(state: dict[str, Any], encoded: dict[str, Any]) -> float:
    """CPU seconds of this process (all threads) to store the changed snapshots, as the
    publisher does: one ``put_snapshots`` on a SQLite file."""
    import trio

    from federation.store import EncodedJsonObject, open_store

    documents: dict[str, Any] = {
        name: item.document if hasattr(item, "document") else EncodedJsonObject(item.text)
        for name, item in encoded.items()
    }

    async def write() -> None:
        async with open_store(state["store"]) as store:
            await store.put_snapshots(documents, 1.0)

    started = time.process_time()
    trio.run(write)
    return time.process_time() - started


def measure(n: int, repeat: int, store_dir: str | None = None) -> dict[str, float]:
    """Best-of-``repeat`` CPU seconds of a rebuild after one cluster's health flips."""
    from federation.service.snapshot_bytes import SnapshotEncoder

    best: dict[str, float] | None = None
    for _ in range(repeat):
        state: dict[str, Any] = {"encoder": SnapshotEncoder(), "digests": {}, "version": 0}
        if store_dir:
            state["store"] = f"sqlite:///{store_dir}/rebuild-{n}-{len(os.listdir(store_dir))}.db"
        try:
            from federation.service.snapshot_plan import SnapshotPlanner

            state["planner"] = SnapshotPlanner()
        except ImportError:
            pass
        members, reach, bundles = _fleet(n, healthy_first=True)
        first = _rebuild(state, members, reach, bundles)
        flipped, _, _ = _fleet(n, healthy_first=False)
        result = _rebuild(state, flipped, reach, bundles)
        result["first_total"] = sum(first[k] for k in ("plan", "encode", "store", "stamp"))
        result["total"] = sum(result[k] for k in ("plan", "encode", "store", "stamp"))
        if best is None or result["total"] < best["total"]:
            best = result
    assert best is not None
    return best


def _line(label: str, n: int, r: dict[str, float]) -> str:
    return (
        f"{label:>8} N={n:<5} flip rebuild {1000 * r['total']:8.1f} ms CPU "
        f"(plan {1000 * r['plan']:.1f}, encode {1000 * r['encode']:.1f}, "
        f"store {1000 * r['store']:.1f}, stamp {1000 * r['stamp']:.1f}; "
        f"{int(r['changed'])} changed) | first build "
        f"{1000 * r['first_total']:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="another tree to A/B against")
    parser.add_argument(
        "--store", action="store_true", help="also time put_snapshots on a temporary SQLite file"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps({n: measure(n, args.repeat, args.store_dir) for n in sizes}))
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [("this", here)] + ([("compare", args.compare)] if args.compare else [])
    for n in sizes:
        for label, root in trees:
            env = dict(os.environ, PYTHONPATH=root)
            cmd = [sys.executable, os.path.abspath(__file__), "--json", "--sizes", str(n)]
            cmd += ["--repeat", str(args.repeat)]
            with tempfile.TemporaryDirectory(prefix="rebuild-bench-") as tmp:
                cmd += ["--store-dir", tmp] if args.store else []
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            print(_line(label, n, json.loads(out.stdout)[str(n)]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
