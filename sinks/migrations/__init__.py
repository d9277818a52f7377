"""Versioned DDL migrations, applied at start-up, idempotent.

Files are ``NNNN_name.sql`` in this folder, applied in order; each statement
ends with ``;`` at the end of a line. Applied versions are recorded in
``schema_migrations`` so a restart applies only what is new, and every
statement is written to be harmless if run twice (``IF NOT EXISTS``), so a
crash between a statement and its record does no damage either.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).parent
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Executes(Protocol):
    """What a migration needs of a store (sinks/store.py's Store has it): the
    store opens through ``migrate``, so this module cannot import it."""

    def command(self, sql: str) -> Any: ...

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def insert(self, table: str, rows: list[dict[str, Any]]) -> Any: ...


def migration_files() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(HERE.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append((int(m.group(1)), m.group(2), path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError("duplicate migration version")
    return found


def statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


def migrate(store: Executes, upto: int | None = None) -> list[int]:
    """Apply pending migrations (up to version ``upto``: a store as an older
    release left it, for tests); return the versions applied now."""
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)"
        ") ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {r["version"] for r in store.query("SELECT version FROM schema_migrations FINAL")}
    applied = []
    for version, name, path in migration_files():
        if version in done or (upto is not None and version > upto):
            continue
        for stmt in statements(path.read_text()):
            store.command(stmt)
        store.insert("schema_migrations", [{"version": version, "name": name}])
        applied.append(version)
    return applied
