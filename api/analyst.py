"""Analysts' SQL over the analytics tables: read-only, limited, tenant-scoped.

With the embedded store the API process owns ClickHouse, so analysts reach
it through ``POST /v1/sql`` (and ``skillstream sql``). Each query is checked
by ClickHouse's own parser (``EXPLAIN AST``) before it runs: one SELECT, only
the tables in ``TABLES`` (no table functions such as merge(), file(), url(),
remote(); no other database, so no system tables), no SETTINGS of its own.
It then runs wrapped as ``SELECT * FROM (…) LIMIT n`` with ClickHouse's
``readonly = 1``, ``max_execution_time`` and, for a tenant's analyst,
``additional_table_filters`` putting ``tenant_id = <the token's tenant>`` on
every table it reads, however the query names or nests it. A ClickHouse
server can enforce the same with a read-only user and row policies
(docs/reports.md, Analysts' SQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sinks.store import Store, StoreError

# Every table an analyst may read; each carries tenant_id.
TABLES = (
    "events",
    "learner_daily",
    "learner_scores",
    "program_weekly",
    "identity_links",
    "optout_state",
    "learner_week",
    "learner_latest",
    "learner_firsts",
    "events_by_time",
    "learner_event_firsts",
    "task_progress",
    "planner_time",
    "kpi_events",
    "org_links",
    "audit_events",
    "xapi_statements",  # every accepted xAPI statement, pseudonymised (docs/ingestion.md)
)
FORMATS = {
    "json": ("JSONEachRow", "application/x-ndjson"),
    "csv": ("CSVWithNames", "text/csv"),
    "parquet": ("Parquet", "application/vnd.apache.parquet"),
}
_TABLE = re.compile(r"^\s*TableIdentifier (\S+)")
_CTE = re.compile(r"(?:\bWITH|,)\s+([A-Za-z_][A-Za-z0-9_]*)\s+AS\s*\(", re.I)


class SqlRefused(ValueError):
    """The query is not one an analyst may run; the message says why."""


@dataclass(frozen=True)
class SqlResult:
    body: bytes
    content_type: str


def check(store: Store, sql: str) -> str:
    """The query without a trailing semicolon, if ClickHouse's parser finds
    it to be one SELECT over allowed tables; else ``SqlRefused``."""
    text = sql.strip().rstrip(";").strip()
    if not text or ";" in text:
        raise SqlRefused("one SELECT statement, without ';' inside")
    try:
        ast = [r["explain"] for r in store.query("EXPLAIN AST " + text)]
    except StoreError as exc:
        raise SqlRefused(f"does not parse: {str(exc)[:300]}") from exc
    if not ast or not ast[0].startswith("SelectWithUnionQuery"):
        raise SqlRefused("only SELECT queries")
    ctes = {m.group(1).lower() for m in _CTE.finditer(text)}
    # a CTE may not take a real table's name: in another scope of the query
    # the same name would mean the table
    real = {r["name"] for r in store.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase()")}  # fmt: skip
    ctes -= real
    for line, child in zip(ast, [*ast[1:], ""], strict=True):
        node = line.strip()
        if node == "Set" or node.startswith("Set "):
            raise SqlRefused("SETTINGS are not allowed in analyst queries")
        if node.startswith("TableExpression") and not child.strip().startswith(
            ("TableIdentifier", "Subquery")
        ):
            raise SqlRefused(f"table functions are not allowed ({child.strip()[:60]})")
        m = _TABLE.match(line)
        if m:
            _allowed_table(m.group(1), ctes)
    return text


def _allowed_table(name: str, ctes: set[str]) -> None:
    bare = name.removeprefix("default.")
    if bare in TABLES or ("." not in bare and bare.lower() in ctes):
        return
    raise SqlRefused(f"table {name!r} is not an analytics table ({', '.join(TABLES)})")


def run(
    store: Store,
    sql: str,
    *,
    tenant_id: str | None,
    fmt: str = "json",
    max_rows: int,
    max_seconds: float,
) -> SqlResult:
    """Run an analyst's query; ``tenant_id`` None = every tenant (platform)."""
    text = check(store, sql)
    ch_format, content_type = FORMATS[fmt]
    settings = [f"max_execution_time = {float(max_seconds)}", "max_result_bytes = 0"]
    if tenant_id is not None:
        settings.insert(0, f"additional_table_filters = {_filters(tenant_id)}")
    # readonly last: the settings before it are ours, nothing after may change
    settings.append("readonly = 1")
    wrapped = f"SELECT * FROM (\n{text}\n) LIMIT {int(max_rows)} SETTINGS {', '.join(settings)}"
    return SqlResult(store.raw(wrapped, fmt=ch_format), content_type)


def _filters(tenant_id: str) -> str:
    cond = "tenant_id = " + _quote(tenant_id)
    return "{" + ", ".join(f"{_quote(t)}: {_quote(cond)}" for t in TABLES) + "}"


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
