"""Diagnostic launcher: ``python bench/_loopprobe.py OUT.json <isthmus args...>``.

Runs ``isthmus <args>`` (e.g. ``gateway run --config ...``) with a trio instrument and
``gc.callbacks`` that record every garbage collection (generation, duration, objects
collected), every task step or run-loop batch above a CPU-time threshold, CPU per task name,
``gc.get_count()`` once a second, and for each HTTP/2 exchange its residence (wall and thread
CPU time from its headers being parsed to its ended response being pulled for writing). Writes
them to OUT.json at exit. SIGUSR1/SIGUSR2 mark the measured run: object counts by type are
compared between them (OUT.json.types) and, with ``LOOPPROBE_SAVEALL=1``, the cyclic garbage of
the run is counted by type (OUT.json.garbage). ``LOOPPROBE_SITES=1``: where each task step
suspended (innermost frames, counted per task) and the thread CPU around the loop's waits
(poll + wake-up, and the batch-end writes done just before), in OUT.json's ``sites``. Used
by ``bench/_tail.py --probe``; the probe's own records are preallocated or bounded so it does
not feed the GC it watches.
"""

from __future__ import annotations

import atexit
import gc
import json
import runpy
import sys
import time

import trio

OUT = sys.argv[1]
STEP_MS = 0.4
BATCH_MS = 1.0
gcs: list[tuple[float, int, float, int]] = []
steps: list[tuple[float, str, float]] = []
counts: list[tuple[float, int, int, int]] = []
per_task: dict[str, list[float]] = {}
batches: list[tuple[float, float, int, list[tuple[str, float]]]] = []
_gc_start = [0.0]
SITES = bool(__import__("os").environ.get("LOOPPROBE_SITES"))
sites: dict[str, float] = {}  # LOOPPROBE_SITES: counts and CPU µs by key, measured run only
_sites_on = [False]


def _add(key: str, value: float) -> None:
    sites[key] = sites.get(key, 0.0) + value


def _site(task: trio.lowlevel.Task) -> str:
    """The innermost frames (up to 4) of the coroutine chain a task is suspended in."""
    link: object = task.coro
    frames = []
    for _ in range(80):
        frame = getattr(link, "cr_frame", None) or getattr(link, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        nxt = getattr(link, "cr_await", None)
        if nxt is None:
            nxt = getattr(link, "gi_yieldfrom", None)
        if nxt is None:
            break
        link = nxt
    names = [
        f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_code.co_name}:{f.f_lineno}"
        for f in frames[-4:]
    ]
    return " < ".join(reversed(names)) or "done"


def _gc(phase: str, info: dict[str, int]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _gc_start[0] = now
    else:
        gcs.append((time.time(), info["generation"], (now - _gc_start[0]) * 1e3, info["collected"]))


gc.callbacks.append(_gc)


class Probe(trio.abc.Instrument):
    def __init__(self) -> None:
        self.t0 = 0.0
        self.batch_t0 = time.thread_time()
        self.batch_steps: list[tuple[str, float]] = []
        self.last_count = 0.0
        self.io_t0 = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.t0 = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        ms = (time.thread_time() - self.t0) * 1e3
        self.batch_steps.append((task.name.rsplit(".", 1)[-1], ms))
        agg = per_task.setdefault(task.name, [0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += ms
        agg[2] = max(agg[2], ms)
        if _sites_on[0]:
            _add(task.name.rsplit(".", 1)[-1] + " suspended at " + _site(task), 1)
        if ms >= STEP_MS:
            steps.append((time.time(), task.name, ms))

    def before_io_wait(self, timeout: float) -> None:
        self.io_t0 = time.thread_time()
        ms = (self.io_t0 - self.batch_t0) * 1e3
        if ms >= BATCH_MS:
            top = sorted(self.batch_steps, key=lambda s: -s[1])[:6]
            batches.append((time.time(), ms, len(self.batch_steps), top))
        self.batch_steps = []

    def after_io_wait(self, timeout: float) -> None:
        if _sites_on[0]:
            kind = "sleep" if timeout > 0 else "poll0"
            _add(f"io wait {kind}: count", 1)
            _add(
                f"io wait {kind}: thread CPU µs incl. batch-end writes",
                (time.thread_time() - self.io_t0) * 1e6,
            )
        now = time.time()
        if now - self.last_count >= 1.0:
            self.last_count = now
            counts.append((now, *gc.get_count()))
        self.batch_t0 = time.thread_time()


_real_run = trio.run


def _run(*args, **kwargs):  # type: ignore[no-untyped-def]
    kwargs["instruments"] = [*kwargs.get("instruments", ()), Probe()]
    return _real_run(*args, **kwargs)


trio.run = _run  # type: ignore[assignment]


# (wall ms, CPU ms) from parse to write, preallocated: the probe must not feed the GC
import array  # noqa: E402

RES_MAX = 400_000
residence = array.array("d", bytes(8 * 2 * RES_MAX))
res_n = [0]


def _patch_residence() -> None:
    """Stamp each HTTP/2 exchange when parsed and when its ended response is pulled for
    writing (wall and thread CPU time): B's own share of a request's latency."""
    from proxy.listeners import h2driver, h2exchange

    ex_cls = h2exchange.H2Exchange
    real_init = ex_cls.__init__

    def init(self, conn, head):  # type: ignore[no-untyped-def]
        real_init(self, conn, head)
        self._t_in = (time.perf_counter(), time.thread_time())
        self._t_done = False

    ex_cls.__init__ = init  # type: ignore[method-assign]

    def mark(self):  # type: ignore[no-untyped-def]
        if self.ended and not self._t_done:
            self._t_done = True
            lst = self._conn.__dict__.setdefault("_probe_ended", [])
            lst.append(self)

    for name in ("start_response", "send_data", "end_response"):
        real = getattr(ex_cls, name)

        def wrap(real=real):  # type: ignore[no-untyped-def]
            async def method(self, *a, **k):  # type: ignore[no-untyped-def]
                try:
                    return await real(self, *a, **k)
                finally:
                    mark(self)  # type: ignore[no-untyped-call]

            return method

        setattr(ex_cls, name, wrap())  # type: ignore[no-untyped-call]
    conn_cls = h2driver.H2Connection
    real_pull = conn_cls._pull_output

    def pull(self):  # type: ignore[no-untyped-def]
        lst = self.__dict__.get("_probe_ended")
        if lst:
            now = (time.perf_counter(), time.thread_time())
            for ex in lst:
                i = res_n[0] % RES_MAX
                residence[2 * i] = (now[0] - ex._t_in[0]) * 1e3
                residence[2 * i + 1] = (now[1] - ex._t_in[1]) * 1e3
                res_n[0] += 1
            lst.clear()
        return real_pull(self)

    conn_cls._pull_output = pull  # type: ignore[method-assign]


def _patch_batchend() -> None:
    """Thread CPU of the end-of-batch writes (proxy.batchend), by the wait that follows."""
    from proxy import batchend

    real = batchend.BatchEnd.before_io_wait

    def hook(self, timeout):  # type: ignore[no-untyped-def]
        t0 = time.thread_time()
        real(self, timeout)
        if _sites_on[0]:
            kind = "sleep" if timeout > 0 else "poll0"
            _add(f"io wait {kind}: batch-end writes thread CPU µs", (time.thread_time() - t0) * 1e6)

    batchend.BatchEnd.before_io_wait = hook  # type: ignore[method-assign]


def _dump() -> None:
    with open(OUT, "w") as f:
        json.dump(
            {
                "gc": gcs,
                "steps": steps[-5000:],
                "batches": batches[-5000:],
                "per_task": per_task,
                "residence": [
                    (residence[2 * i], residence[2 * i + 1]) for i in range(min(res_n[0], RES_MAX))
                ],
                "counts": counts,
                "sites": sorted(sites.items(), key=lambda kv: -kv[1]),
            },
            f,
        )


atexit.register(_dump)

import cProfile  # noqa: E402
import signal  # noqa: E402

_prof = cProfile.Profile()
SAVEALL = bool(__import__("os").environ.get("LOOPPROBE_SAVEALL"))
PROFILE = bool(__import__("os").environ.get("LOOPPROBE_CPROFILE"))


_types_before: dict[str, int] = {}


def _type_counts() -> dict[str, int]:
    import collections

    c: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        name = type(o).__qualname__
        c[name] += 1
        if name == "tuple":
            c["tuple" + repr(tuple(type(x).__name__ for x in o[:4]))] += 1
    return dict(c)


def _start_profile(*_: object) -> None:
    _sites_on[0] = SITES
    _types_before.update(_type_counts())
    if SAVEALL:
        gc.set_debug(gc.DEBUG_SAVEALL)
    if PROFILE:
        _prof.enable()


def _stop_profile(*_: object) -> None:
    _sites_on[0] = False
    if PROFILE:
        _prof.disable()
        _prof.dump_stats(OUT + ".prof")
    if SAVEALL:
        import collections

        gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        with open(OUT + ".garbage", "w") as f:
            for k, n in kinds.most_common(40):
                f.write(f"{n:8d} {k}\n")
        with open(OUT + ".garbage", "a") as f:
            ids = {id(o) for o in gc.garbage}
            for o in gc.garbage:
                if type(o).__qualname__ == "H2Exchange":
                    f.write(f"exchange {o.stream_id} ended={o.ended} body={o.body!r}\n")
                    for r in gc.get_referrers(o):
                        if id(r) in ids:
                            desc = type(r).__qualname__
                            if isinstance(r, dict):
                                desc += " keys=" + ",".join(map(str, list(r)[:8]))
                            if hasattr(r, "cr_code"):
                                desc += " " + r.cr_code.co_qualname
                            if hasattr(r, "ag_code"):
                                desc += " " + r.ag_code.co_qualname
                            f.write(f"   <- {desc}\n")
                            for r2 in gc.get_referrers(r):
                                if id(r2) in ids:
                                    d2 = type(r2).__qualname__
                                    if hasattr(r2, "f_code"):
                                        d2 += " " + r2.f_code.co_qualname
                                    f.write(f"      <- {d2}\n")
                    break
        gc.set_debug(0)
        gc.garbage.clear()
    after = _type_counts()
    grown = sorted(((after.get(k, 0) - _types_before.get(k, 0), k) for k in after), reverse=True)
    with open(OUT + ".types", "w") as f:
        for n, k in grown[:40]:
            f.write(f"{n:+8d} {k}\n")


signal.signal(signal.SIGUSR1, _start_profile)
signal.signal(signal.SIGUSR2, _stop_profile)
_patch_residence()
if SITES:
    _patch_batchend()
sys.argv = ["isthmus", *sys.argv[2:]]
runpy.run_module("isthmus", run_name="__main__", alter_sys=True)
