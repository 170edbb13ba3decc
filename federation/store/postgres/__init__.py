"""The PostgreSQL backend (psycopg 3): several replicas over one database."""

from federation.store.postgres.backend import PostgresStore, open_postgres_store

__all__ = ["PostgresStore", "open_postgres_store"]
