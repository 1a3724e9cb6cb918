"""SQLite as a real transactional database: foreign keys on, and SAVEPOINT-correct.

pysqlite's own transaction handling breaks SAVEPOINT (used by nested transactions and the
test suite); SQLAlchemy's documented recipe takes the BEGIN over.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _on_connect(dbapi_connection, connection_record) -> None:
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    # Write-ahead log: a reader (e.g. the request that enqueued an inline job) never blocks
    # the commit of a job running in its own session. No-op for in-memory databases.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _on_begin(connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")
