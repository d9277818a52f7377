"""The engagement chart's closed weeks, kept in ClickHouse (migration 0017).

A week before the current one is computed once per scope and kept in
``engagement_weeks`` with its ``basis``: the count of learner_week writes
for its tenant and week (``learner_week_writes``, counted by a view) when it
was computed. It is reused while that count is unchanged: a late event or a
recomputed score adds a write, and the erasure and the purge delete through
``delete_rows``, which invalidates as soon as learner_week rows go. The key also holds
the rules that turn rows into figures (the queries' text, the inactivity
threshold), so a release that changes them computes every week again. The
current week depends on today (inactivity is carried to today) and is always
computed.

The count is read before the week's rows, so a row landing in between makes
the saved basis older than the rows it was computed from: the next read
computes the week again, never the other way round.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, date, datetime
from typing import Any

from api.reports.scope import Filter
from sinks.store import Store

STATS = ("learners", "median_score", "at_risk", "n_active", "n_programs")


def scope_key(f: Filter, rules: tuple[Any, ...]) -> str:
    """The scope as the rows it reads (its filter's text and values) and
    the ``rules`` computing the figures from them."""
    blob = json.dumps([f.sql, f.params, rules], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def saved(
    store: Store, tenant: str, key: str, start: date, current: date
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """For the weeks from ``start`` up to (not including) ``current`` that
    have learner_week rows: the saved stats still valid, and every such
    week's write count."""
    stats = ", ".join(f"k.kept.{i + 2} AS {name}" for i, name in enumerate(STATS))
    rows = store.query(
        f"""
        SELECT toString(b.week) AS wk, b.writes AS writes, k.kept.1 = b.writes AS valid, {stats}
        FROM (
            SELECT week, sum(writes) AS writes FROM learner_week_writes
            WHERE ({{t:String}} = '' OR tenant_id = {{t:String}})
              AND week >= {{start:Date}} AND week < {{current:Date}}
            GROUP BY week
        ) AS b
        LEFT JOIN (
            SELECT week, argMax(({", ".join(("basis", *STATS))}), computed_at) AS kept
            FROM engagement_weeks
            WHERE tenant_id = {{t:String}} AND scope_key = {{k:String}}
              AND week >= {{start:Date}} AND week < {{current:Date}}
            GROUP BY week
        ) AS k ON k.week = b.week
        """,
        {"t": tenant, "k": key, "start": start.isoformat(), "current": current.isoformat()},
    )
    basis = {r["wk"]: int(r["writes"]) for r in rows}
    valid = {r["wk"]: _typed(r) for r in rows if int(r["valid"])}
    return valid, basis


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A kept week's figures as numbers (JSON brings 64-bit integers as text)."""
    return {k: float(row[k]) if k == "median_score" else int(row[k]) for k in STATS}


def save(
    store: Store, tenant: str, key: str, weeks: dict[str, dict[str, Any]], basis: dict[str, int]
) -> None:
    """Keep each computed closed week with the write count read before it."""
    now = datetime.now(UTC)
    rows = [
        {
            "tenant_id": tenant,
            "scope_key": key,
            "week": wk,
            "basis": basis[wk],
            **{k: s[k] for k in STATS},
            "computed_at": now,
        }
        for wk, s in weeks.items()
    ]
    if rows:
        store.insert("engagement_weeks", rows)


def invalidate(store: Store, tenant_id: str) -> None:
    """Right after learner_week rows of ``tenant_id`` were deleted: every
    week of it counts one more write, so no week kept before is reused (one
    computed meanwhile from the rows before the delete included), and the
    weeks kept for the tenant go: figures of a one-learner scope are that
    learner's."""
    p = {"t": tenant_id}
    store.command(
        "INSERT INTO learner_week_writes SELECT tenant_id, week, 1 FROM learner_week_writes"
        " WHERE tenant_id = {t:String} GROUP BY tenant_id, week",
        p,
    )
    store.command(
        "ALTER TABLE engagement_weeks DELETE WHERE tenant_id IN ({t:String}, '')"
        " SETTINGS mutations_sync = 1",
        p,
    )


def delete_rows(store: Store, tenant_id: str, table: str, where: str, params: dict) -> None:
    """Delete rows of one of ``tenant_id``'s tables now (erasure, purge).
    Deleting learner_week rows invalidates the tenant's kept weeks at once,
    before a later delete of the same request may fail; any delete counts
    as a deletion for the tenant (results kept in memory are computed again
    on their next request) and drops its kept report figures."""
    with DELETING:
        _count_deletion(tenant_id)  # before: a result computed meanwhile is not reused
        store.command(
            f"ALTER TABLE {table} DELETE WHERE {where} SETTINGS mutations_sync = 1", params
        )
        _count_deletion(tenant_id)  # after: nor one computed while the delete ran
        store.command(
            "ALTER TABLE report_figures DELETE WHERE tenant_id = {t:String}"
            " SETTINGS mutations_sync = 1",
            {"t": tenant_id},
        )
        if table == "learner_week":
            invalidate(store, tenant_id)


# Deletions this process made, per tenant: part of every kept result's basis
# (api/reports/cache.py), so none computed before a deletion is served after it.
_deletions: dict[str, int] = {}
_deletions_lock = threading.Lock()
# Held while rows are deleted: a figures row is stored under it after
# checking no deletion came since its computation began (api/reports/figures.py).
DELETING = threading.Lock()


def _count_deletion(tenant_id: str) -> None:
    with _deletions_lock:
        _deletions[tenant_id] = _deletions.get(tenant_id, 0) + 1


def deletions(tenant_id: str | None) -> int:
    """Deletions counted for ``tenant_id`` (None: every tenant's)."""
    with _deletions_lock:
        if tenant_id is None:
            return sum(_deletions.values())
        return _deletions.get(tenant_id, 0)
