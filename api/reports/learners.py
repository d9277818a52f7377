"""The learner list: per learner in scope scored within the last days, the
latest score, its components, days inactive and the at-risk flag as of
today. The screen reads one sorted page; files read every learner in
(tenant, user) order one key range at a time, as items (a PDF's table) or
as CSV that ClickHouse writes itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from api.reports.common import FreshFn, describe, freshness, iso, latest_fields, together
from api.reports.scope import Filter, Scope
from sinks.store import Store
from streams.score import INACTIVE_DAYS

COMPONENTS = ("sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed")
SORTS = {  # fixed ORDER BY text per allowed sort key (never from the request)
    "score": "sc ASC, t, u",
    "-score": "sc DESC, t, u",
    "user_id": "u ASC, t",
    "-user_id": "u DESC, t",
    "days_inactive": "di ASC, t, u",
    "-days_inactive": "di DESC, t, u",
    "at_risk": "risk ASC, sc ASC, t, u",
    "-at_risk": "risk DESC, sc ASC, t, u",
}

# Learners after (a_t, a_u) up to (b_t, b_u) in (tenant, user) order; b_t ''
# = no upper bound. The screen reads every key; exports read one range at a
# time so each aggregation holds a bounded number of learners.
KEY_RANGE = (
    "(tenant_id > {a_t:String} OR (tenant_id = {a_t:String} AND user_id > {a_u:String}))"
    " AND ({b_t:String} = '' OR tenant_id < {b_t:String}"
    " OR (tenant_id = {b_t:String} AND user_id <= {b_u:String}))"
)
# The latest row's components, packed below its (day, version) in one
# UInt256 (sinks/migrations/0016), and its program and cohort: the key of
# the learner's row holding that largest value.
COMPONENT_COLUMNS = (
    "max(latest_components) AS lc, nullIf(argMax(program_id, latest_components), '') AS prog,"
    " nullIf(argMax(cohort_id, latest_components), '') AS coh, "
    + ", ".join(
        f"toUInt32(bitAnd(bitShiftRight(lc, {32 * (len(COMPONENTS) - i)}), 4294967295)) AS c_{c}"
        for i, c in enumerate(COMPONENTS, start=1)
    )
)
# The list's one query (screen and files): per learner in scope whose latest
# score row falls within the window (``d > since``), that row's score, days
# inactive and at-risk flag as of ``today``, from the packed latest row (no
# state to merge). ``more``: files ask for the components in the same pass;
# the screen merges them for its page only (``PAGE_COMPONENTS``).
LEARNERS = """
    SELECT tenant_id AS t, user_id AS u, max(latest) AS l, {day} AS d,
           toString(d) AS scored_on, {score} AS sc,
           {days_inactive} + dateDiff('day', d, {{today:Date}}) AS di,
           toUInt8({at_risk} = 1 OR di >= {{inactive:UInt16}}) AS risk {more}
    FROM learner_latest
    WHERE {where} AND {key_range}
    GROUP BY tenant_id, user_id
    HAVING d > {{since:Date}} {want}
"""
PAGE = """
    SELECT *, count() OVER () AS total FROM ({learners})
    ORDER BY {order} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
"""
COUNT = "SELECT count() AS n FROM ({learners})"
# The page's components only: a state merged per shown learner, not per
# learner in scope.
PAGE_COMPONENTS = """
    SELECT tenant_id AS t, user_id AS u, {components}
    FROM learner_latest
    WHERE {where} AND tenant_id IN {{kt:Array(String)}} AND user_id IN {{ku:Array(String)}}
    GROUP BY tenant_id, user_id
"""
IN_ORDER = "SELECT * FROM ({learners}) ORDER BY t, u"
# Every ``chunk``-th key of learner_firsts in its sort order, read by one
# stream: no sort and nothing buffered (a window function would hold every
# key).
KEY_BOUNDS = """
    SELECT t, u FROM (
        SELECT tenant_id AS t, user_id AS u FROM learner_firsts
        WHERE {where} ORDER BY tenant_id, user_id)
    WHERE rowNumberInAllBlocks() % {{chunk:UInt32}} = {{chunk:UInt32}} - 1
    ORDER BY t, u
    SETTINGS max_threads = 1
"""
# A safety net: an export range's aggregation and sort spill to disk past
# this (a range of EXPORT_CHUNK_ROWS learners stays well below it).
EXPORT_SPILL_BYTES = 64 * 2**20
CSV = """
    SELECT {texts}, scored_on, sc AS score, risk AS at_risk, di AS days_inactive, {components}
    FROM ({learners})
    ORDER BY t, u
    SETTINGS format_csv_null_representation = '',
             optimize_aggregation_in_order = 1,
             max_bytes_before_external_group_by = {spill},
             max_bytes_before_external_sort = {spill}
"""


def learners(
    store: Store,
    scope: Scope,
    *,
    page: int = 1,
    page_size: int = 50,
    sort: str = "-at_risk",
    at_risk: bool | None = None,
    days: int = 28,
    today: date | None = None,
    sink_fresh: FreshFn | None = None,
) -> dict[str, Any]:
    """Learners with a score in the last ``days`` days: latest score, its
    components, days inactive and the at-risk flag as of today."""
    today = today or datetime.now(UTC).date()
    f = scope.filter("learner_latest")
    p = _learner_params(f, today, days, at_risk)
    listed = _learners_sql(f, at_risk)
    rows, fresh = together(
        lambda: store.query(PAGE.format(learners=listed, order=SORTS[sort]),
                            {**p, "limit": page_size, "offset": (page - 1) * page_size}),
        lambda: freshness(store, scope, sink_fresh),
    )  # fmt: skip
    if rows:
        total = int(rows[0]["total"])
    else:  # past the last page: still say how many there are
        total = int(store.query(COUNT.format(learners=listed), p)[0]["n"])
    return {
        "scope": describe(scope),
        "items": [_learner_item(r) for r in _with_components(store, f, p, rows)],
        "page": page,
        "page_size": page_size,
        "total": total,
        "sort": sort,
        "computed_at": iso(datetime.now(UTC)),
        "data_fresh_as_of": iso(fresh),
    }


def _with_components(
    store: Store, f: Filter, p: dict[str, Any], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The page's ``rows`` with their components (``PAGE_COMPONENTS``)."""
    if not rows:
        return []
    comps = store.query(
        PAGE_COMPONENTS.format(components=COMPONENT_COLUMNS, where=f.sql),
        {**p, "kt": sorted({r["t"] for r in rows}), "ku": [r["u"] for r in rows]},
    )
    by_key = {(c["t"], c["u"]): c for c in comps}
    # a learner erased between the two queries drops out of the page
    return [{**r, **by_key[k]} for r in rows if (k := (r["t"], r["u"])) in by_key]


def _learners_sql(f: Filter, at_risk: bool | None, *, components: bool = False) -> str:
    """``LEARNERS`` for the scope's filter ``f``, only at-risk learners (or
    only the others) when ``at_risk`` says so, with the ``components``."""
    return LEARNERS.format(
        where=f.sql,
        key_range=KEY_RANGE,
        more=f", {COMPONENT_COLUMNS}" if components else "",
        want="" if at_risk is None else "AND risk = {want_risk:UInt8}",
        **latest_fields("l"),
    )


def _learner_params(f: Filter, today: date, days: int, at_risk: bool | None) -> dict[str, Any]:
    return {
        "today": today.isoformat(),
        "since": (today - timedelta(days=days)).isoformat(),
        "inactive": INACTIVE_DAYS,
        "want_risk": int(bool(at_risk)),
        "a_t": "",
        "a_u": "",
        "b_t": "",
        "b_u": "",
        **f.params,
    }


def _learner_item(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": r["t"],
        "user_id": r["u"],
        "program_id": r["prog"],
        "cohort_id": r["coh"],
        "scored_on": r["scored_on"],
        "score": int(r["sc"]),
        "at_risk": bool(int(r["risk"])),
        "days_inactive": int(r["di"]),
        "components": {c: int(r[f"c_{c}"]) for c in COMPONENTS},
    }


def learner_ranges(
    store: Store, scope: Scope, p: dict[str, Any], chunk: int
) -> Iterator[dict[str, Any]]:
    """``p`` once per key range of about ``chunk`` learners, in order, bounded
    by ``KEY_BOUNDS``. A key repeated across unmerged parts only makes its
    range a row shorter."""
    f = scope.filter("learner_firsts")
    bounds = store.query(KEY_BOUNDS.format(where=f.sql), {**f.params, "chunk": chunk})
    lo = ("", "")
    for hi in [(r["t"], r["u"]) for r in bounds] + [("", "")]:
        yield {**p, "a_t": lo[0], "a_u": lo[1], "b_t": hi[0], "b_u": hi[1]}
        lo = hi


def learners_in_order(
    store: Store, scope: Scope, *, at_risk: bool | None = None, days: int = 28, chunk: int
) -> Iterator[dict[str, Any]]:
    """The learner list's items in (tenant, user) order, one key range at a
    time (a PDF's table)."""
    f = scope.filter("learner_latest")
    p = _learner_params(f, datetime.now(UTC).date(), days, at_risk)
    sql = IN_ORDER.format(learners=_learners_sql(f, at_risk, components=True))
    for params in learner_ranges(store, scope, p, chunk):
        yield from (_learner_item(r) for r in store.query(sql, params))


def learners_csv(
    scope: Scope,
    *,
    at_risk: bool | None = None,
    days: int = 28,
    today: date | None = None,
) -> tuple[str, dict[str, Any]]:
    """Every row of ``learners`` (same query, same columns as an export's
    ``sources.LEARNER_COLUMNS``) as SQL for ClickHouse to write as CSV
    itself, ordered by tenant then user. A text cell never starts a
    spreadsheet formula (a quote is put in front, as csv_writer does) and
    carries no line break, so every line is one row."""
    today = today or datetime.now(UTC).date()
    f = scope.filter("learner_latest")
    names = {"t": "tenant_id", "u": "user_id", "prog": "program_id", "coh": "cohort_id"}
    sql = CSV.format(
        texts=", ".join(f"{_cell(col)} AS {name}" for col, name in names.items()),
        components=", ".join(f"c_{c} AS {c}" for c in COMPONENTS),
        learners=_learners_sql(f, at_risk, components=True),
        spill=EXPORT_SPILL_BYTES,
    )
    return sql, _learner_params(f, today, days, at_risk)


def _cell(col: str) -> str:
    clean = f"replaceRegexpAll({col}, '[\\r\\n]', ' ')"
    return (
        f"if(substring({col}, 1, 1) IN ('=', '+', '-', '@', '\\t'),"
        f" concat('\\'', {clean}), {clean})"
    )
