"""A throwaway PostgreSQL server for tests, and an empty database per test.

``postgres_server`` (session-scoped) either uses ``ISTHMUS_TEST_POSTGRES_DSN`` (a role allowed
to CREATE DATABASE) or starts a private cluster from the PostgreSQL binaries: ``initdb`` into a
temp dir (as the ``postgres`` user when running as root, since PostgreSQL refuses root),
``pg_ctl start`` on a free 127.0.0.1 port with its unix socket inside the temp dir and
``fsync=off``; it is stopped and deleted at the end of the session. Without binaries or a DSN
the fixture skips with the reason.

``postgres_dsn`` (per test) hands out an empty database: one database per session whose
``public`` schema is recreated before each test (much faster than CREATE DATABASE). Use it by
importing the fixtures into a ``conftest.py``::

    from tests.helpers.postgres import postgres_dsn, postgres_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

DSN_ENV = "ISTHMUS_TEST_POSTGRES_DSN"


def find_postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` (Debian), else wherever ``initdb`` is on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _url_with_dbname(dsn: str, dbname: str) -> str:
    """A ``postgresql://`` URL for ``dsn`` (URL or key=value form) pointing at ``dbname``."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    user = quote(str(info.get("user") or pwd.getpwuid(os.geteuid()).pw_name), safe="")
    password = info.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    host = str(info.get("host") or "127.0.0.1")
    netloc = f"{auth}@{host}" if not host.startswith("/") else auth + "@"
    port = info.get("port")
    netloc += f":{port}" if port and not host.startswith("/") else ""
    query = f"?host={quote(host, safe='')}&port={port or 5432}" if host.startswith("/") else ""
    return f"postgresql://{netloc}/{dbname}{query}"


class PostgresServer:
    """A running PostgreSQL reachable at ``admin_dsn``; hands out fresh databases."""

    def __init__(self, admin_dsn: str, workdir: Path | None = None, bindir: Path | None = None):
        self.admin_dsn = admin_dsn
        self.workdir = workdir
        self.bindir = bindir
        self._shared: str | None = None

    def shared_database(self) -> str:
        """One database for the whole session (created on first use, dropped by :meth:`close`)."""
        if self._shared is None:
            self._shared = self.create_database()
        return self._shared

    def close(self) -> None:
        """Drop the shared database (matters only for a server we did not start)."""
        if self._shared is not None:
            self.drop_database(self._shared)
            self._shared = None

    def create_database(self) -> str:
        """Create an empty database; return its DSN."""
        name = f"isthmus_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return _url_with_dbname(self.admin_dsn, name)

    def drop_database(self, dsn: str) -> None:
        """Drop a database made by :meth:`create_database`, disconnecting its sessions."""
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @classmethod
    @contextlib.contextmanager
    def start(cls, bindir: Path) -> Iterator[PostgresServer]:
        """initdb + pg_ctl start in a temp dir; stop and delete it on exit."""
        as_root = os.geteuid() == 0
        # As root the server runs as "postgres", which must be able to reach the directory:
        # a private $TMPDIR (e.g. under /root) would not do.
        parent = "/tmp" if as_root and os.path.isdir("/tmp") else None
        workdir = Path(tempfile.mkdtemp(prefix="isthmus-pg-", dir=parent))
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        user = "postgres" if as_root else pwd.getpwuid(os.geteuid()).pw_name
        if as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(workdir, entry.pw_uid, entry.pw_gid)
        data, sockets, logfile = workdir / "data", workdir / "sockets", workdir / "postgres.log"
        port = _free_port()

        def run(*args: str) -> None:
            subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

        run("mkdir", "-p", str(sockets))
        run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions")  # fmt: skip
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=300"
        )
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-w", "-t", "60",
                "-o", options, "start")  # fmt: skip
            yield cls(f"postgresql://{user}@127.0.0.1:{port}/postgres", workdir, bindir)
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (see the module docstring)."""
    if dsn := os.environ.get(DSN_ENV):
        server = PostgresServer(dsn)
        yield server
        server.close()
        return
    bindir = find_postgres_bindir()
    if bindir is None:
        pytest.skip(
            f"PostgreSQL binaries not found (apt-get install postgresql) and {DSN_ENV} is unset"
        )
    with PostgresServer.start(bindir) as server:
        yield server


def reset_database(dsn: str) -> None:
    """Make the database empty again: end its other sessions (and their advisory locks), then
    drop and recreate the ``public`` schema. ~15 ms, where CREATE DATABASE takes ~400 ms."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The ``postgresql://`` URL of an empty database, private to the test while it runs.

    One database serves the session; before each test its ``public`` schema is recreated and
    any leftover session is ended. Use :meth:`PostgresServer.create_database` for a truly
    separate database.
    """
    dsn = postgres_server.shared_database()
    reset_database(dsn)
    return dsn
