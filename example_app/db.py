"""SQLite storage: one connection per app context, schema, and transactions.

Every write runs in ``with transaction():`` (``BEGIN IMMEDIATE`` ... commit,
or rollback on any exception), so a failed request leaves nothing half-written.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    display_name TEXT NOT NULL,
    custom_claims TEXT NOT NULL,
    roles TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    valid_from REAL NOT NULL,
    valid_until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_app ON credentials(application_id);
CREATE TABLE IF NOT EXISTS assets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    document TEXT NOT NULL,
    created_by TEXT NOT NULL
);
"""


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode; :func:`transaction` opens transactions."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def get_db() -> sqlite3.Connection:
    """The app context's connection, opened on first use."""
    if "example_db" not in g:
        g.example_db = connect(current_app.config["EXAMPLE_DATABASE"])
    conn: sqlite3.Connection = g.example_db
    return conn


def _close(exc: BaseException | None = None) -> None:
    conn = g.pop("example_db", None)
    if conn is not None:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back if the block raises."""
    conn = conn if conn is not None else get_db()
    # IMMEDIATE takes the write lock up front, so two writers queue on the
    # busy timeout instead of failing half-way with SQLITE_BUSY.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def initialize(path: str) -> tuple[bool, str]:
    """Create the schema if needed; return (created, tenant identity).

    ``created`` is True only for the process that created the tenant, which
    therefore also creates the root registration.
    """
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
        conn.executescript(SCHEMA)
        with transaction(conn):
            row = conn.execute("SELECT value FROM meta WHERE key = 'tenant'").fetchone()
            if row is not None:
                return False, str(row["value"])
            tenant = f"tenant/{uuid.uuid4()}"
            conn.execute("INSERT INTO meta (key, value) VALUES ('tenant', ?)", (tenant,))
            return True, tenant
    finally:
        conn.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close)
