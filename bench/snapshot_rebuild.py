"""CPU cost of one snapshot rebuild at N clusters, pure (no store, no HTTP, no event loop).

    .venv/bin/python bench/snapshot_rebuild.py                       # N = 100 and 1,000
    .venv/bin/python bench/snapshot_rebuild.py --compare /tmp/base   # A/B against another tree

Each of N clusters exports one service with one endpoint and its own ~1.2 KiB trust bundle
(the shape of ``bench.convergence``'s fleet). After a first build, cluster ``g00000``'s
endpoint turns unhealthy, so every other cluster's routing changes: the rebuild then plans,
encodes (the document the store keeps), stores and makes servable every changed snapshot, as
:class:`~federation.service.publisher.SnapshotPublisher` does. Printed: CPU ms per rebuild
(``time.process_time``) split in plan / encode / store (``--store``: ``put_snapshots`` on a
SQLite file kept open, all threads) / serve (stamping every body and its gzip, in trees before
2026-11-26 01:50; since then bodies are built when asked), the best of ``--repeat`` runs.
Beside it, not in the total: what the streams then do once per flip, each cluster's stream
message (``PushEncoder``) and its delta against the cluster's previous one.

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
    encoder = state["encoder"]
    encoded: dict[str, Any]
    t0 = time.process_time()
    if "planner" in state:
        import inspect

        from federation.service.snapshot_plan import encode_planned

        planner, extra = state["planner"], {}
        if "trust_digest" in inspect.signature(planner.plan).parameters:  # as plan_and_encode
            section = encoder.section({td: bundles[td] for td in sorted(bundles)}, {})
            extra["trust_digest"] = section.text.digest
        changed = planner.plan(members, reach, bundles, {}, state["digests"], **extra)
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
    served = _serve(state, changed, encoded)
    t3 = time.process_time()
    delta_s = _push(state, served)
    t4 = time.process_time() - delta_s
    return {
        "plan": t1 - t0,
        "encode": t2 - t1 - write_s,
        "store": write_s,
        "stamp": t3 - t2,
        "push": t4 - t3,
        "delta": delta_s,
        "changed": len(changed),
    }


def _serve(state: dict[str, Any], changed: dict[str, Any], encoded: dict[str, Any]) -> Any:
    """What the publisher does after the store write so that watchers can be served: stamp
    every body (before 2026-11-26 01:50) or hand over the content (built when asked)."""
    from federation.service import snapshot_plan
    from federation.service.served import ServedSnapshot

    version = state["version"]
    served = {}
    if hasattr(snapshot_plan, "stamp_all") or "planner" not in state:
        from federation.service.snapshot_bytes import stamp

        for name, item in encoded.items():
            body = stamp(getattr(item, "content", item), version)
            served[name] = ServedSnapshot(
                version, changed[name].digest, body.body, 0.0, body.gzipped
            )
    else:
        for name, item in encoded.items():
            served[name] = ServedSnapshot(
                version, changed[name].digest, None, 0.0, content=item.content
            )
    for name, item in changed.items():
        state["digests"][name] = item.digest
    return served


def _push(state: dict[str, Any], served: dict[str, Any]) -> float:
    """Each cluster's stream message (``push``), and its delta against the cluster's previous
    push (returned: CPU seconds of the deltas alone)."""
    from federation.service.stream_push import PushEncoder

    pushes = state.setdefault("pushes", PushEncoder())
    bases = state.setdefault("bases", {})
    delta_s = 0.0
    for name, item in served.items():
        if hasattr(pushes, "push_served"):
            push = pushes.push_served(name, item)
        else:
            push = pushes.push(name, item.version, item.body)
        base = bases.get(name)
        if base is not None:
            started = time.process_time()
            pushes.delta(name, base, push)
            delta_s += time.process_time() - started
        bases[name] = push
    return delta_s


def _store_write(state: dict[str, Any], encoded: dict[str, Any]) -> float:
    """CPU seconds of this process (all threads) in ``put_snapshots`` of the changed snapshots
    on a SQLite file kept open between rebuilds, as the publisher stores them."""
    import trio

    from federation.store import EncodedJsonObject

    documents: dict[str, Any] = {
        name: item.document if hasattr(item, "document") else EncodedJsonObject(item.text)
        for name, item in encoded.items()
    }

    async def write() -> float:
        started = time.process_time()
        await state["store"].put_snapshots(documents, 1.0)
        return time.process_time() - started

    return float(trio.from_thread.run(write, trio_token=state["token"]))


def measure(
    n: int, repeat: int, store_dir: str | None = None, join: bool = False
) -> dict[str, float]:
    """Best-of-``repeat`` CPU seconds of a rebuild after one cluster's health flips (or, with
    ``join``, after cluster N+1 joins with its bundle)."""
    if not store_dir:
        return _measure(n, repeat, None, join)
    import trio

    from federation.store import open_store

    async def run() -> dict[str, float]:
        url = f"sqlite:///{store_dir}/rebuild-{n}.db"
        async with open_store(url) as store:
            token = trio.lowlevel.current_trio_token()
            context = {"store": store, "token": token}
            return await trio.to_thread.run_sync(_measure, n, repeat, context, join)

    return trio.run(run)


def _measure(
    n: int, repeat: int, store: dict[str, Any] | None, join: bool = False
) -> dict[str, float]:
    from federation.service.snapshot_bytes import SnapshotEncoder

    best: dict[str, float] | None = None
    for _ in range(repeat):
        state: dict[str, Any] = {"encoder": SnapshotEncoder(), "digests": {}, "version": 0}
        state.update(store or {})
        try:
            from federation.service.snapshot_plan import SnapshotPlanner

            state["planner"] = SnapshotPlanner()
        except ImportError:
            pass
        members, reach, bundles = _fleet(n + 1 if join else n, healthy_first=True)
        if join:
            first = _rebuild(state, *_without_last(members, reach, bundles))
            result = _rebuild(state, members, reach, bundles)
        else:
            first = _rebuild(state, members, reach, bundles)
            flipped, _, _ = _fleet(n, healthy_first=False)
            result = _rebuild(state, flipped, reach, bundles)
        steps = ("plan", "encode", "store", "stamp")
        result["first_total"] = sum(first[k] for k in steps)
        result["total"] = sum(result[k] for k in steps)
        if best is None or result["total"] < best["total"]:
            best = result
    assert best is not None
    return best


def _without_last(
    members: list[Any], reach: Any, bundles: dict[str, str]
) -> tuple[list[Any], Any, dict[str, str]]:
    """The fleet before its last cluster joined."""
    from federation.service.leases import Reachability

    kept = members[:-1]
    states = {m.name: reach.states[m.name] for m in kept}
    return kept, Reachability(states), {m.trust_domain: bundles[m.trust_domain] for m in kept}


def _line(label: str, n: int, r: dict[str, float]) -> str:
    return (
        f"{label:>8} N={n:<5} rebuild {1000 * r['total']:8.1f} ms CPU "
        f"(plan {1000 * r['plan']:.1f}, encode {1000 * r['encode']:.1f}, "
        f"store {1000 * r['store']:.1f}, serve {1000 * r['stamp']:.1f}; "
        f"{int(r['changed'])} changed) | then per flip: stream messages "
        f"{1000 * r['push']:.1f} ms, deltas {1000 * r['delta']:.1f} ms | first build "
        f"{1000 * r['first_total']:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--join", action="store_true", help="a join instead of a flip: cluster N+1 and its bundle"
    )
    parser.add_argument("--compare", metavar="DIR", help="another tree to A/B against")
    parser.add_argument(
        "--store", action="store_true", help="also time put_snapshots on a temporary SQLite file"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.json:
        results = {n: measure(n, args.repeat, args.store_dir, args.join) for n in sizes}
        print(json.dumps(results))
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = [("this", here)] + ([("compare", args.compare)] if args.compare else [])
    for n in sizes:
        for label, root in trees:
            env = dict(os.environ, PYTHONPATH=root)
            cmd = [sys.executable, os.path.abspath(__file__), "--json", "--sizes", str(n)]
            cmd += ["--repeat", str(args.repeat)] + (["--join"] if args.join else [])
            with tempfile.TemporaryDirectory(prefix="rebuild-bench-") as tmp:
                cmd += ["--store-dir", tmp] if args.store else []
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            print(_line(label, n, json.loads(out.stdout)[str(n)]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
