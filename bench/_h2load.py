"""Drive a listener with ``h2load`` and read back rate, failures and latency percentiles.

Percentiles come from h2load's ``--log-file`` (one line per request: start time in µs, status,
µs until the end of the response), because its summary only gives min/max/mean/sd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._procs import BenchError, run_tool

_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


@dataclass(frozen=True)
class Load:
    """One h2load invocation: ``clients`` connections × ``streams`` concurrent streams, either
    ``duration_s`` long or ``requests`` in total, optionally at ``rps_per_client``."""

    clients: int
    streams: int
    duration_s: float | None = None
    requests: int | None = None
    rps_per_client: float | None = None
    warm_up_s: float = 0.0
    connect_every_ms: int | None = None

    def argv(self, url: str, authority: str, log_file: Path) -> list[str]:
        args = ["h2load", *self.flags()]
        return [*args, "-H", f":authority: {authority}", f"--log-file={log_file}", url]

    def flags(self) -> list[str]:
        """The load's h2load options (no target, header or log)."""
        args = ["-c", str(self.clients), "-m", str(self.streams), "-t", "1"]
        if self.duration_s is not None:
            args += ["-D", f"{self.duration_s:g}"]
            if self.warm_up_s:
                args += ["--warm-up-time", f"{self.warm_up_s:g}"]
        else:
            args += ["-n", str(self.requests or 1000)]
        if self.rps_per_client is not None:
            args += [f"--rps={self.rps_per_client:g}"]
        if self.connect_every_ms is not None:  # -r: open one connection per period
            args += ["-r", "1", f"--rate-period={self.connect_every_ms}ms"]
        return args

    def bound_s(self) -> float:
        """A generous wall-clock bound for the run."""
        if self.duration_s is not None:
            return self.duration_s + self.warm_up_s + 60.0
        if self.requests and self.rps_per_client:
            return self.requests / (self.clients * self.rps_per_client) + 60.0
        return 180.0


@dataclass(frozen=True)
class LoadResult:
    """What one h2load run measured. Latencies in milliseconds over successful requests."""

    total: int
    succeeded: int
    failed: int
    non_2xx: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.non_2xx == 0 and self.succeeded > 0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def parse_summary(text: str) -> tuple[int, int, int, int, float, float]:
    """``(total, succeeded, failed, non_2xx, seconds, rps)`` from h2load's summary. Raises
    :class:`BenchError` when the summary is missing (h2load could not connect at all)."""
    finished, requests, status = (
        _FINISHED.search(text),
        _REQUESTS.search(text),
        _STATUS.search(text),
    )
    if finished is None or requests is None or status is None:
        raise BenchError(f"h2load printed no summary: {text.strip()[-400:]}")
    seconds = float(finished.group(1)) / (1000.0 if finished.group(2) == "ms" else 1.0)
    total, succeeded = int(requests.group(1)), int(requests.group(3))
    # h2load's "failed" already includes "errored" and "timeout"
    failed = max(int(requests.group(4)), int(requests.group(5)) + int(requests.group(6)))
    non_2xx = sum(int(status.group(i)) for i in (2, 3, 4))
    return total, succeeded, failed, non_2xx, seconds, float(finished.group(3))


def read_latencies(log_file: Path) -> list[float]:
    """Sorted per-request latencies (ms) of 2xx responses from an h2load ``--log-file``."""
    values: list[float] = []
    with log_file.open() as lines:
        for line in lines:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].startswith("2"):
                values.append(int(parts[2]) / 1000.0)
    values.sort()
    return values


def run_h2load(
    url: str,
    authority: str,
    load: Load,
    *,
    cpus: str | None,
    env: dict[str, str] | None = None,
) -> LoadResult:
    """Run h2load against ``url`` with ``:authority`` set; pinned to ``cpus``. ``env`` is added
    to the environment (see :func:`client_cert_env` for an https URL with a client cert)."""
    with tempfile.TemporaryDirectory(prefix="isthmus-h2load-") as tmp:
        log_file = Path(tmp) / "requests.tsv"
        done = run_tool(
            load.argv(url, authority, log_file),
            cpus=cpus,
            timeout_s=load.bound_s(),
            what=f"h2load {url}",
            env=env,
        )
        total, succeeded, failed, non_2xx, seconds, rps = parse_summary(done.stdout)
        latencies = read_latencies(log_file) if log_file.exists() else []
    return LoadResult(
        total=total,
        succeeded=succeeded,
        failed=failed,
        non_2xx=non_2xx,
        seconds=seconds,
        rps=rps,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
    )


# h2load cannot present a client certificate. This LD_PRELOAD shim (the one in the team's
# shared tools, h2load-mtls) loads SHIM_CERT/SHIM_KEY into every OpenSSL client context.
SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/ssl.h>
SSL_CTX *SSL_CTX_new(const SSL_METHOD *m) {
    static SSL_CTX *(*real)(const SSL_METHOD *) = NULL;
    if (!real) real = dlsym(RTLD_NEXT, "SSL_CTX_new");
    SSL_CTX *ctx = real(m);
    const char *c = getenv("SHIM_CERT"), *k = getenv("SHIM_KEY");
    if (ctx && c && k) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM) != 1)
            fprintf(stderr, "shim: failed to load client cert\n");
    }
    return ctx;
}
"""
SHIM_PACKAGES = "gcc libssl-dev"


def build_client_cert_shim(directory: Path) -> Path | None:
    """Compile the shim into ``directory``; None when gcc or OpenSSL headers are missing
    (install :data:`SHIM_PACKAGES`)."""
    if shutil.which("gcc") is None or not Path("/usr/include/openssl/ssl.h").exists():
        return None
    source, out = directory / "clientcert_shim.c", directory / "clientcert_shim.so"
    source.write_text(SHIM_SOURCE, encoding="utf-8")
    done = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl", "-lssl"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out if done.returncode == 0 else None


def client_cert_env(shim: Path, cert: Path, key: Path) -> dict[str, str]:
    """Environment that makes h2load present ``cert``/``key`` (through ``shim``)."""
    return {"LD_PRELOAD": str(shim), "SHIM_CERT": str(cert), "SHIM_KEY": str(key)}
