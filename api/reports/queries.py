"""Every report, one function each: plain dicts out, parameterised SQL in.

The HTTP routes and (later) the CSV/PDF exports call these same functions,
so a screen and a file built at the same moment show the same numbers.
Scoping is the caller's ``Scope``; nothing here reads a request.

Definitions (docs/reports.md):
- a week is an ISO week (Monday..Sunday, UTC); the current week is week to date;
- a learner's score in a week is their latest ``learner_scores`` row in it;
- at risk: that row's flag, or no activity for ``INACTIVE_DAYS`` days by the
  end of the week (today for the current week) — the score rule of
  streams/score.py carried forward to days without a score row;
- weekly active learners: learners with at least one counted event that week;
- programs tracked: distinct programs with activity that week;
- completion rate: learners who completed a program / learners ever active,
  both counted up to the end of the week.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from api.reports import summaries, terms
from api.reports.scope import Filter, Scope
from schemas.dictionary import BY_NAME
from sinks.store import SESSIONS, Store
from streams.score import INACTIVE_DAYS

FreshFn = Callable[[str | None], datetime | None]
# A latest score row packed in one UInt128 (sinks/migrations/0014): its fields.
LATEST = {
    "day": "toDate(toUInt16(bitShiftRight({c}, 112)))",
    "score": "toUInt8(bitAnd(bitShiftRight({c}, 40), 255))",
    "at_risk": "toUInt8(bitAnd(bitShiftRight({c}, 32), 255))",
    "days_inactive": "toUInt16(bitAnd(bitShiftRight({c}, 16), 65535))",
}


def _latest(col: str) -> dict[str, str]:
    """SQL for each field of the packed latest row in column ``col``."""
    return {k: v.format(c=col) for k, v in LATEST.items()}


# A report's independent queries run at once: the store's sessions overlap
# them (sinks/store.py), so a report costs about its longest chain of
# queries, not their sum.
_QUERIES = ThreadPoolExecutor(max_workers=2 * SESSIONS, thread_name_prefix="report-query")


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Each call's result, in order, the calls run concurrently: the first
    in this thread, the others on the pool. A call the pool has not started
    by the time this thread is free runs here instead, so a report never
    waits behind other reports' queued queries, and a call that itself calls
    ``together`` only ever waits on calls already running."""
    futures = [_QUERIES.submit(call) for call in calls[1:]]
    try:
        first = calls[0]()
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    rest = [call() if future.cancel() else future.result()
            for call, future in zip(calls[1:], futures, strict=True)]  # fmt: skip
    return [first, *rest]


REDACTED = "[redacted]"
COMPONENTS = ("sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed")


def _iso(d: datetime | None) -> str | None:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else None


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _tile(value: float | int | None, previous: float | int | None, pct: bool = True) -> dict:
    delta = None if value is None or previous is None else round(value - previous, 4)
    tile: dict[str, Any] = {"value": value, "previous": previous, "delta": delta}
    if pct:
        tile["delta_pct"] = (
            round(100 * (value - previous) / previous, 1)
            if value is not None and previous not in (None, 0)
            else None
        )
    return tile


def freshness(store: Store, scope: Scope, sink_fresh: FreshFn | None = None) -> datetime | None:
    """Newest received_at that is queryable for the scope's tenant (or any)."""
    if sink_fresh is not None:
        got = sink_fresh(scope.tenant_id)
        if got is not None:
            return got
    rows = store.query(
        "SELECT toUnixTimestamp64Milli(max(received_at)) AS ms, count() AS n"
        " FROM tenant_freshness WHERE ({t:String} = '' OR tenant_id = {t:String})",
        {"t": scope.tenant_id or ""},
    )
    if not rows or not int(rows[0]["n"]):
        return None
    return datetime.fromtimestamp(int(rows[0]["ms"]) / 1000, UTC)


# --- engagement ------------------------------------------------------------------
def engagement(
    store: Store,
    scope: Scope,
    *,
    weeks: int = 8,
    target: float = 70.0,
    today: date | None = None,
    sink_fresh: FreshFn | None = None,
) -> dict[str, Any]:
    today = today or datetime.now(UTC).date()
    n = max(2, weeks)  # the previous week is always needed for the deltas
    first = _monday(today) - timedelta(weeks=n - 1)
    week_list = [first + timedelta(weeks=i) for i in range(n)]
    f = scope.filter("learner_week")
    p = {"start": first.isoformat(), "today": today.isoformat()}
    by_week, firsts, fresh = together(
        lambda: _weeks(store, scope, f, week_list, today),
        lambda: _firsts(store, f, p),
        lambda: freshness(store, scope, sink_fresh),
    )
    series = []
    for w in week_list:
        wk = w.isoformat()
        s = by_week.get(wk)
        scored = s["learners"] if s else 0
        seen = sum(int(r["n"]) for r in firsts if r["w_active"] <= wk)
        done = sum(int(r["n"]) for r in firsts if r["w_done"] and r["w_done"] <= wk)
        series.append(
            {
                "week": wk,
                "median_score": float(s["median_score"]) if scored else None,
                "target": target,
                "learners_scored": scored,
                "at_risk": s["at_risk"] if s else 0,
                "active_learners": s["n_active"] if s else 0,
                "programs_tracked": s["n_programs"] if s else 0,
                "completion_rate": round(done / seen, 4) if seen else None,
            }
        )
    cur, prev = series[-1], series[-2]
    tiles = {
        "programs_tracked": _tile(cur["programs_tracked"], prev["programs_tracked"]),
        "median_engagement": _tile(cur["median_score"], prev["median_score"], pct=False),
        "weekly_active_learners": _tile(cur["active_learners"], prev["active_learners"]),
        "completion_rate": _tile(cur["completion_rate"], prev["completion_rate"], pct=False),
        "at_risk_learners": _tile(cur["at_risk"], prev["at_risk"]),
    }
    return {
        "scope": describe(scope),
        "weeks": weeks,
        "target": target,
        "series": series[-weeks:],
        "tiles": tiles,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(fresh),
    }


def _firsts(store: Store, f: Filter, p: dict[str, Any]) -> list[dict[str, Any]]:
    """For the completion rate: learners counted by their week of first
    activity and of first completion (earlier weeks collapse into the
    chart's first), summed up to each week by the caller."""
    return store.query(
        f"""
        SELECT toString(greatest(toMonday(fa), {{start:Date}})) AS w_active,
               if(fc = toDate(0), '', toString(greatest(toMonday(fc), {{start:Date}}))) AS w_done,
               count() AS n
        FROM (
            SELECT tenant_id, user_id, minIfMerge(first_active) AS fa,
                   minIfMerge(first_done) AS fc
            FROM learner_firsts
            WHERE {f.sql}
            GROUP BY tenant_id, user_id
            HAVING fa != toDate(0) AND fa <= {{today:Date}}
        )
        GROUP BY w_active, w_done
        """,
        {**p, **f.params},
    )


# One pass per learner and week over the weeks asked: the packed latest score
# row (0: none that week) and activity, then per week.
_WEEKLY = """
    SELECT toString(w) AS wk, countIf(l > 0) AS learners,
           quantileExactInclusiveIf(0.5)({score}, l > 0) AS median_score,
           countIf(l > 0 AND ({at_risk} = 1 OR {days_inactive}
               + dateDiff('day', {day}, least(w + 6, {{today:Date}}))
               >= {{inactive:UInt16}})) AS at_risk,
           countIf(act = 1) AS n_active
    FROM (
        SELECT week AS w, tenant_id, user_id, max(latest) AS l, max(active) AS act
        FROM learner_week
        WHERE week >= {{lo:Date}} AND week <= {{hi:Date}} AND has({{weeks:Array(Date)}}, week)
          AND {where}
        GROUP BY w, tenant_id, user_id
    )
    GROUP BY wk
"""
# Programs with activity per week: a distinct pass, a handful of groups.
_PROGRAMS = """
    SELECT toString(week) AS wk, count() AS n_programs FROM (
        SELECT DISTINCT week, tenant_id, program_id FROM learner_week
        WHERE week >= {{lo:Date}} AND week <= {{hi:Date}} AND has({{weeks:Array(Date)}}, week)
          AND {where} AND active = 1 AND program_id != ''
    ) GROUP BY wk
"""


def _weeks(
    store: Store, scope: Scope, f: Filter, week_list: list[date], today: date
) -> dict[str, dict[str, Any]]:
    """The chart's figures per week: closed weeks kept at their current
    write count are read back, the others computed (and kept), the current
    week always computed (api/reports/summaries.py)."""
    current = _monday(today)
    tenant = scope.tenant_id or ""
    key = summaries.scope_key(f, (_WEEKLY, _PROGRAMS, LATEST, INACTIVE_DAYS))
    kept, basis = summaries.saved(store, tenant, key, week_list[0], current)
    todo = [w for w in week_list
            if w >= current or (w.isoformat() in basis and w.isoformat() not in kept)]  # fmt: skip
    computed = _week_stats(store, f, todo, today)  # the current week is always in todo
    closed: dict[str, dict[str, Any]] = {}
    for w in todo:
        if w < current:  # a week without a learner's row in scope is kept as zeros
            closed[w.isoformat()] = computed.get(w.isoformat(), dict.fromkeys(summaries.STATS, 0))
    summaries.save(store, tenant, key, closed, basis)
    return kept | computed


def _week_stats(
    store: Store, f: Filter, weeks: list[date], today: date
) -> dict[str, dict[str, Any]]:
    """``_WEEKLY`` and ``_PROGRAMS`` over ``weeks`` (the bounds let the
    primary key skip the other weeks; ``has`` keeps the ones asked)."""
    p = {"weeks": [w.isoformat() for w in weeks], "lo": min(weeks).isoformat(),
         "hi": max(weeks).isoformat(), "today": today.isoformat(), "inactive": INACTIVE_DAYS,
         **f.params}  # fmt: skip
    weekly, programs = together(
        lambda: store.query(_WEEKLY.format(where=f.sql, **_latest("l")), p),
        lambda: store.query(_PROGRAMS.format(where=f.sql), p),
    )
    progs = {r["wk"]: int(r["n_programs"]) for r in programs}
    out: dict[str, dict[str, Any]] = {}
    for r in weekly:
        scored = int(r["learners"])
        out[r["wk"]] = {
            "learners": scored,
            "median_score": float(r["median_score"]) if scored else 0.0,
            "at_risk": int(r["at_risk"]),
            "n_active": int(r["n_active"]),
            "n_programs": progs.get(r["wk"], 0),
        }
    return out


# --- learners ---------------------------------------------------------------------
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
    rows, fresh = together(
        lambda: store.query(
            f"""SELECT *, count() OVER () AS total FROM ({_learners_sql(f, at_risk)})
            ORDER BY {SORTS[sort]} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}""",
            {**p, "limit": page_size, "offset": (page - 1) * page_size},
        ),
        lambda: freshness(store, scope, sink_fresh),
    )
    if rows:
        total = int(rows[0]["total"])
    else:  # past the last page: still say how many there are
        counted = store.query(f"SELECT count() AS n FROM ({_learners_sql(f, at_risk)})", p)
        total = int(counted[0]["n"])
    # The page's components only: a state merged per shown learner, not per
    # learner in scope.
    comps = store.query(
        _components_sql(f, "tenant_id IN {kt:Array(String)} AND user_id IN {ku:Array(String)}"),
        {**p, "kt": sorted({r["t"] for r in rows}), "ku": [r["u"] for r in rows]},
    ) if rows else []  # fmt: skip
    by_key = {(c["t"], c["u"]): c for c in comps}
    # a learner erased between the two queries drops out of the page
    rows = [{**r, **by_key[k]} for r in rows if (k := (r["t"], r["u"])) in by_key]
    items = [_learner_item(r) for r in rows]
    return {
        "scope": describe(scope),
        "items": items,
        "page": page,
        "page_size": page_size,
        "total": total,
        "sort": sort,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(fresh),
    }


# Learners after (a_t, a_u) up to (b_t, b_u) in (tenant, user) order; b_t ''
# = no upper bound. The screen reads every key; exports read one range at a
# time so each aggregation holds a bounded number of learners.
KEY_RANGE = (
    "(tenant_id > {a_t:String} OR (tenant_id = {a_t:String} AND user_id > {a_u:String}))"
    " AND ({b_t:String} = '' OR tenant_id < {b_t:String}"
    " OR (tenant_id = {b_t:String} AND user_id <= {b_u:String}))"
)


def _learners_sql(f: Filter, at_risk: bool | None, *, components: bool = False) -> str:
    """The learner list's one query (screen and files): per learner in scope
    whose latest score row falls within the window (``d > since``), that
    row's score, days inactive and at-risk flag as of ``today``, from the
    packed latest row (no state to merge). Files ask for the ``components``
    in the same pass; the screen merges them for its page only
    (``_components_sql``)."""
    want = "" if at_risk is None else "AND risk = {want_risk:UInt8}"
    x = _latest("l")
    more = f", {_COMPONENTS}" if components else ""
    return f"""
        SELECT tenant_id AS t, user_id AS u, max(latest) AS l, {x["day"]} AS d,
               toString(d) AS scored_on, {x["score"]} AS sc,
               {x["days_inactive"]} + dateDiff('day', d, {{today:Date}}) AS di,
               toUInt8({x["at_risk"]} = 1 OR di >= {{inactive:UInt16}}) AS risk {more}
        FROM learner_latest
        WHERE {f.sql} AND {KEY_RANGE}
        GROUP BY tenant_id, user_id
        HAVING d > {{since:Date}} {want}
    """


# The latest row's components, packed below its (day, version) in one
# UInt256 (sinks/migrations/0016), and its program and cohort: the key of
# the learner's row holding that largest value.
_COMPONENTS = (
    "max(latest_components) AS lc, nullIf(argMax(program_id, latest_components), '') AS prog,"
    " nullIf(argMax(cohort_id, latest_components), '') AS coh, "
    + ", ".join(
        f"toUInt32(bitAnd(bitShiftRight(lc, {32 * (len(COMPONENTS) - i)}), 4294967295)) AS c_{c}"
        for i, c in enumerate(COMPONENTS, start=1)
    )
)


def _components_sql(f: Filter, keys: str) -> str:
    """``_COMPONENTS`` per learner in scope matching ``keys`` (SQL)."""
    return f"""
        SELECT tenant_id AS t, user_id AS u, {_COMPONENTS}
        FROM learner_latest WHERE {f.sql} AND {keys}
        GROUP BY tenant_id, user_id
    """


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


def learner_ranges(
    store: Store, scope: Scope, p: dict[str, Any], chunk: int
) -> Iterator[dict[str, Any]]:
    """``p`` once per key range of about ``chunk`` learners, in order. The
    bounds are every ``chunk``-th key of ``learner_firsts``, read in its
    sort order by one stream: no sort and nothing buffered (a window
    function would hold every key). A key repeated across unmerged parts
    only makes its range a row shorter."""
    f = scope.filter("learner_firsts")
    bounds = store.query(
        f"""SELECT t, u FROM (
                SELECT tenant_id AS t, user_id AS u FROM learner_firsts
                WHERE {f.sql} ORDER BY tenant_id, user_id)
            WHERE rowNumberInAllBlocks() % {{chunk:UInt32}} = {{chunk:UInt32}} - 1
            ORDER BY t, u
            SETTINGS max_threads = 1""",
        {**f.params, "chunk": chunk},
    )
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
    for params in learner_ranges(store, scope, p, chunk):
        sql = f"SELECT * FROM ({_learners_sql(f, at_risk, components=True)}) ORDER BY t, u"
        yield from (_learner_item(r) for r in store.query(sql, params))


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


# A safety net: an export range's aggregation and sort spill to disk past
# this (a range of EXPORT_CHUNK_ROWS learners stays well below it).
EXPORT_SPILL_BYTES = 64 * 2**20


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
    texts = ", ".join(f"{_cell(col)} AS {name}" for col, name in names.items())
    comps = ", ".join(f"c_{c} AS {c}" for c in COMPONENTS)
    sql = f"""
        SELECT {texts}, scored_on, sc AS score, risk AS at_risk, di AS days_inactive, {comps}
        FROM ({_learners_sql(f, at_risk, components=True)})
        ORDER BY t, u
        SETTINGS format_csv_null_representation = '',
                 optimize_aggregation_in_order = 1,
                 max_bytes_before_external_group_by = {EXPORT_SPILL_BYTES},
                 max_bytes_before_external_sort = {EXPORT_SPILL_BYTES}
    """
    return sql, _learner_params(f, today, days, at_risk)


def _cell(col: str) -> str:
    clean = f"replaceRegexpAll({col}, '[\\r\\n]', ' ')"
    return (
        f"if(substring({col}, 1, 1) IN ('=', '+', '-', '@', '\\t'),"
        f" concat('\\'', {clean}), {clean})"
    )


# --- activity: reports generated, audit events -----------------------------------
def activity(
    store: Store, scope: Scope, *, days: int = 30, now: datetime | None = None
) -> dict[str, Any]:
    """The seed's "Reports generated" (exports requested in the last ``days``
    days, failed ones aside) and "Audit events" tiles, each with the ``days``
    before as previous. Admins count their tenant's (platform: every or the
    picked tenant); anyone else their own exports and their own audit rows."""
    now = now or datetime.now(UTC)
    own = scope.role not in ("platform_admin", "company_admin")
    p = {
        "t": scope.tenant_id or "",
        "me": scope.actor_id if own else "",
        "since": now - timedelta(days=days),
        "prev": now - timedelta(days=2 * days),
        "now": now,
    }
    tenant = "({t:String} = '' OR tenant_id = {t:String})"
    reports = store.query(
        f"""
        SELECT uniqExactIf(export_id, created_at > {{since:DateTime64(3)}}) AS cur,
               uniqExactIf(export_id, created_at <= {{since:DateTime64(3)}}) AS prev
        FROM exports FINAL
        WHERE {tenant} AND ({{me:String}} = '' OR requested_by = {{me:String}})
          AND created_at > {{prev:DateTime64(3)}} AND created_at <= {{now:DateTime64(3)}}
          AND status != 'failed'
        """,
        p,
    )[0]
    audits = store.query(
        f"""
        SELECT countIf(at > {{since:DateTime64(3)}}) AS cur,
               countIf(at <= {{since:DateTime64(3)}}) AS prev
        FROM audit_events
        WHERE {tenant} AND ({{me:String}} = '' OR actor_id = {{me:String}})
          AND at > {{prev:DateTime64(3)}} AND at <= {{now:DateTime64(3)}}
        """,
        p,
    )[0]
    return {
        "scope": describe(scope),
        "window_days": days,
        "tiles": {
            "reports_generated": _tile(int(reports["cur"]), int(reports["prev"])),
            "audit_events": _tile(int(audits["cur"]), int(audits["prev"])),
        },
        "computed_at": _iso(datetime.now(UTC)),
    }


# --- one learner's raw events ---------------------------------------------------
def learner_events(store: Store, scope: Scope, user_id: str, *, limit: int = 100) -> dict:
    """A learner's newest clean events; survey free text redacted unless the
    scope may read it."""
    f = scope.filter("events", learner_col="learner_id")
    rows = store.query(
        f"""
        SELECT event_id, event_name, toString(event_timestamp) AS event_timestamp,
               program_id, cohort_id, properties
        FROM events FINAL
        WHERE learner_id = {{uid:String}} AND {f.sql}
        ORDER BY event_timestamp DESC LIMIT {{limit:UInt32}}
        """,
        {"uid": user_id, "limit": limit, **f.params},
    )
    for r in rows:
        props = json.loads(r["properties"] or "{}")
        spec = BY_NAME.get(r["event_name"])
        if spec and not scope.free_text:
            for field in spec.free_text_fields:
                if props.get(field):
                    props[field] = REDACTED
        r["properties"] = props
    return {"scope": describe(scope), "user_id": user_id, "items": rows}


# --- KPIs (seed 003) -----------------------------------------------------------
IN_WINDOW = "event_timestamp >= {since:DateTime64(3)}"
MENTEES = (
    "SELECT DISTINCT tenant_id, object_id FROM org_links FINAL"
    " WHERE relation = 'mentor' AND deleted = 0 AND {fo}"
)
ASSESSED = f"event_name = 'assessment_completed' AND readiness_score IS NOT NULL AND {IN_WINDOW}"


def kpis(
    store: Store,
    scope: Scope,
    *,
    days: int = 30,
    now: datetime | None = None,
    sink_fresh: FreshFn | None = None,
    default_term: str = "quarter",
) -> dict[str, Any]:
    """Seed 003's KPIs that our events support, over the last ``days`` days;
    the readiness delta also per term (the tenant's, else ``default_term``)."""
    now = now or datetime.now(UTC)
    f = scope.filter("events", learner_col="learner_id")
    p = {
        "since": now - timedelta(days=days),
        "now": now,
        "wau_since": now - timedelta(days=7),
        "wau_prev": now - timedelta(days=14),
        "act_since": now - timedelta(days=30),
        **f.params,
    }
    by_term, iv, onboarding, w, wau, act, adherence, planner, fresh = together(
        lambda: _readiness_by_term(store, scope, f, now, default_term),
        lambda: _interventions(store, scope, now - timedelta(days=days), now),
        lambda: _onboarding(store, f, p),
        lambda: _kpi_window(store, f, p),
        lambda: _wau(store, f, p),
        lambda: _activation(store, scope, f, p),
        lambda: _adherence(store, f, p),
        lambda: _planner_time(store, f, p),
        lambda: freshness(store, scope, sink_fresh),
    )  # fmt: skip
    term = by_term["term"]
    resume = {"num": w["resume_num"], "den": w["resume_den"]}
    readiness = {"learners": w["ready_n"], "delta": w["ready_delta"]}
    act_num, act_den = int(act["num"]), int(act["den"])

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    items = [
        _kpi("onboarding_completion_24h", "Guided onboarding completion (24 h)", "student",
             ratio(int(onboarding["num"]), int(onboarding["den"])), "ratio",
             int(onboarding["num"]), int(onboarding["den"]),
             "students first seen in the window who completed onboarding within 24 h"),
        _kpi("action_plan_adherence", "Action plan adherence", "student",
             ratio(int(adherence["num"]), int(adherence["den"])), "ratio",
             int(adherence["num"]), int(adherence["den"]),
             "roadmap tasks due in the window completed by their due date / tasks due in the "
             "window (due date from the newest dated roadmap_task_assigned, else the completion)"),
        _kpi("resume_to_roadmap_14d", "Resume-to-roadmap conversion (14 days)",
             "career_changer", ratio(int(resume["num"]), int(resume["den"])), "ratio",
             int(resume["num"]), int(resume["den"]),
             "learners whose first resume upload in the window led to an accepted action "
             "plan within 14 days"),
        _kpi("roi_projection_engagement", "ROI projection engagement", "career_changer",
             planner["median_s"], "seconds", None, planner["sessions"],
             "median time in the financial planner per session, over sessions with a visit "
             "in the window"),
        _kpi("advisee_activation_30d", "Advisee activation (30 days)", "advisor",
             ratio(act_num, act_den), "ratio", act_num, act_den,
             "learners assigned to a mentor who signed in during the last 30 days"),
        _kpi("readiness_delta", "Skill readiness delta", "student",
             round(float(readiness["delta"]), 2) if int(readiness["learners"]) else None,
             "points", None, int(readiness["learners"]),
             "average change in readiness score, last minus first assessment in the window, "
             "over learners with two or more"),
        _kpi("readiness_delta_term", f"Skill readiness delta this {term}", "student",
             by_term["cur"], "points", None, by_term["cur_n"],
             f"average change in readiness score, last minus first assessment in the current "
             f"calendar {term} (UTC), over learners with two or more; previous: the {term} "
             "before", previous=by_term["prev"]),
        _kpi("intervention_effectiveness", "Intervention effectiveness", "advisor",
             ratio(iv["num"], iv["den"]), "ratio", iv["num"], iv["den"],
             f"after each cohort assessment assignment in the window: (cohort learners under "
             f"readiness {LOW_READINESS} before it − those under it now) / those under it "
             "before; a learner's readiness is their latest assessment"),
        _kpi("wau", "Weekly active users", "platform", int(wau["cur"]), "learners",
             None, None, "distinct identified learners with a counted event in the last 7 days",
             previous=int(wau["prev"])),
    ]  # fmt: skip
    return {
        "scope": describe(scope),
        "window_days": days,
        "kpis": items,
        "computed_at": _iso(datetime.now(UTC)),
        "data_fresh_as_of": _iso(fresh),
    }


def _onboarding(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    """Students first seen in the window, and those onboarded within 24 h."""
    return store.query(
        f"""
        SELECT count() AS den,
               countIf(ob > toDateTime64(0, 3) AND ob <= fs + INTERVAL 24 HOUR) AS num
        FROM (
            SELECT tenant_id, learner_id, min(first_seen) AS fs, argMinMerge(persona) AS who,
                   minIfMerge(onboarded) AS ob
            FROM learner_event_firsts
            WHERE {f.sql} AND learner_id IN (
                SELECT learner_id FROM learner_event_firsts
                WHERE {f.sql} AND first_seen >= {{since:DateTime64(3)}}
                  AND first_seen <= {{now:DateTime64(3)}})
            GROUP BY tenant_id, learner_id
        ) WHERE fs >= {{since:DateTime64(3)}} AND fs <= {{now:DateTime64(3)}} AND who = 'student'
        """,
        p,
    )[0]


def _kpi_window(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    """One pass over the window's KPI events, per learner: resume-to-roadmap
    and the window's readiness delta. Counts are of distinct event ids (the
    table may briefly hold a replay)."""
    return store.query(
        f"""
        SELECT countIf(resumes > 0) AS resume_den,
               countIf(resumes > 0 AND arrayExists(
                   x -> x >= resume AND x <= resume + INTERVAL 14 DAY, plans)) AS resume_num,
               countIf(assessed >= 2) AS ready_n,
               avgIf(last_r - first_r, assessed >= 2) AS ready_delta
        FROM (
            SELECT tenant_id, learner_id,
                   countIf(event_name = 'resume_parsed') AS resumes,
                   minIf(event_timestamp, event_name = 'resume_parsed') AS resume,
                   groupArrayIf(event_timestamp, event_name = 'action_plan_accepted') AS plans,
                   uniqExactIf(event_id, {ASSESSED}) AS assessed,
                   argMinIf(readiness_score, event_timestamp, {ASSESSED}) AS first_r,
                   argMaxIf(readiness_score, event_timestamp, {ASSESSED}) AS last_r
            FROM kpi_events
            WHERE {f.sql} AND learner_id != ''
              AND event_name IN ('resume_parsed', 'action_plan_accepted', 'assessment_completed')
              AND {IN_WINDOW} AND event_timestamp <= {{now:DateTime64(3)}}
            GROUP BY tenant_id, learner_id
        )
        """,
        p,
    )[0]


def _wau(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    """Distinct learners with a counted event in the last 7 days, and in the
    7 before."""
    return store.query(
        f"""
        SELECT uniqExactIf((tenant_id, learner_id), event_timestamp > {{wau_since:DateTime64(3)}})
                   AS cur,
               uniqExactIf((tenant_id, learner_id), event_timestamp <= {{wau_since:DateTime64(3)}})
                   AS prev
        FROM events_by_time
        WHERE {f.sql} AND event_timestamp > {{wau_prev:DateTime64(3)}}
          AND event_timestamp <= {{now:DateTime64(3)}}
        """,
        p,
    )[0]


def _activation(store: Store, scope: Scope, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    """Advisee activation: learners assigned to a mentor (inside the scope)
    who signed in during the last 30 days."""
    fo = scope.filter("events", learner_col="object_id")
    return store.query(
        f"""
        SELECT count() AS den, countIf((tenant_id, object_id) IN (
                   SELECT tenant_id, learner_id FROM events_by_time
                   WHERE {f.sql} AND event_name = 'session_started'
                     AND event_timestamp > {{act_since:DateTime64(3)}}
                     AND event_timestamp <= {{now:DateTime64(3)}}
                     AND (tenant_id, learner_id) IN ({MENTEES.format(fo=fo.sql)}))) AS num
        FROM ({MENTEES.format(fo=fo.sql)})
        """,
        {**p, **fo.params},
    )[0]


def _adherence(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, int]:
    """Roadmap tasks due in the window, and those completed by their due
    date. A task is (learner, plan, task id); its due date is the newest
    dated assignment's, else the one its completion carries; a task without
    any due date cannot be late and is not counted."""
    row = store.query(
        f"""
        SELECT count() AS den, countIf(completions > 0 AND done <= due) AS num
        FROM (
            SELECT ifNull(argMaxIf(due_at, event_timestamp,
                                   event_name = 'roadmap_task_assigned' AND due_at IS NOT NULL),
                          minIf(due_at, event_name = 'task_completion_logged')) AS due,
                   countIf(event_name = 'task_completion_logged') AS completions,
                   minIf(event_timestamp, event_name = 'task_completion_logged') AS done
            FROM task_progress
            WHERE {f.sql} AND task_key IN (
                -- a task's due date is one of its rows': only tasks with one in
                -- the window can be due in it
                SELECT task_key FROM task_progress
                WHERE {f.sql} AND due_at >= {{since:DateTime64(3)}}
                  AND due_at <= {{now:DateTime64(3)}})
            GROUP BY task_key
        ) WHERE due >= {{since:DateTime64(3)}} AND due <= {{now:DateTime64(3)}}
        """,
        p,
    )[0]
    return {"num": int(row["num"]), "den": int(row["den"])}


def _planner_time(store: Store, f: Filter, p: dict[str, Any]) -> dict[str, Any]:
    """Median over sessions of the time spent in the financial planner (each
    visit's duration counted once, however often it was replayed)."""
    row = store.query(
        f"""
        SELECT count() AS sessions, quantileExactInclusive(0.5)(total) AS median_ms
        FROM (
            SELECT sum(ms) AS total FROM (
                SELECT tenant_id, learner_id, session_id, event_id, any(duration_ms) AS ms
                FROM planner_time
                WHERE {f.sql} AND {IN_WINDOW} AND event_timestamp <= {{now:DateTime64(3)}}
                GROUP BY tenant_id, learner_id, session_id, event_id
            ) GROUP BY tenant_id, learner_id, session_id
        )
        """,
        p,
    )[0]
    n = int(row["sessions"])
    return {"sessions": n, "median_s": round(float(row["median_ms"]) / 1000, 1) if n else None}


def _readiness_by_term(
    store: Store, scope: Scope, f: Filter, now: datetime, default_term: str
) -> dict[str, Any]:
    """Readiness delta (last − first assessment per learner with two or
    more) in the current calendar term (the tenant's, else ``default_term``)
    and the one before."""
    term = terms.tenant_term(store, scope.tenant_id, default_term)
    start = terms.term_start(now.date(), term)
    p = {**f.params, "start": start.isoformat(), "prev": terms.previous_start(start, term),
         "now": now}  # fmt: skip
    row = store.query(
        f"""
        SELECT countIf(n_cur >= 2) AS cur_n, avgIf(last_cur - first_cur, n_cur >= 2) AS cur,
               countIf(n_prev >= 2) AS prev_n, avgIf(last_prev - first_prev, n_prev >= 2) AS prev
        FROM (
            SELECT tenant_id, learner_id,
                   uniqExactIf(event_id, cur) AS n_cur, uniqExactIf(event_id, NOT cur) AS n_prev,
                   argMinIf(readiness_score, event_timestamp, cur) AS first_cur,
                   argMaxIf(readiness_score, event_timestamp, cur) AS last_cur,
                   argMinIf(readiness_score, event_timestamp, NOT cur) AS first_prev,
                   argMaxIf(readiness_score, event_timestamp, NOT cur) AS last_prev
            FROM (SELECT *, event_timestamp >= toDateTime64({{start:Date}}, 3) AS cur
                  FROM kpi_events
                  WHERE {f.sql} AND event_name = 'assessment_completed' AND learner_id != ''
                    AND readiness_score IS NOT NULL
                    AND event_timestamp >= toDateTime64({{prev:Date}}, 3)
                    AND event_timestamp <= {{now:DateTime64(3)}})
            GROUP BY tenant_id, learner_id
        )
        """,
        {**p, "prev": p["prev"].isoformat()},
    )[0]

    def delta(n: str, v: str) -> float | None:
        return round(float(row[v]), 2) if int(row[n]) else None

    return {"cur": delta("cur_n", "cur"), "cur_n": int(row["cur_n"]),
            "prev": delta("prev_n", "prev"), "term": term}  # fmt: skip


LOW_READINESS = 60


def _interventions(store: Store, scope: Scope, since: datetime, now: datetime) -> dict[str, int]:
    """Cohort interventions (``cohort_assessment_assigned`` with a cohort) in
    the window: per intervention, the cohort's learners (in scope) whose
    latest readiness at the intervention was under ``LOW_READINESS``, and of
    the cohort those whose latest readiness now is; summed."""
    f = scope.filter("learner_firsts")
    row = store.query(
        f"""
        WITH
          iv AS (SELECT DISTINCT tenant_id, cohort_id AS cohort, event_timestamp AS at
                 FROM kpi_events
                 WHERE event_name = 'cohort_assessment_assigned' AND cohort_id != ''
                   AND ({{t:String}} = '' OR tenant_id = {{t:String}})
                   AND event_timestamp >= {{since:DateTime64(3)}}
                   AND event_timestamp <= {{now:DateTime64(3)}}),
          members AS (SELECT DISTINCT tenant_id, user_id, cohort_id AS cohort FROM learner_firsts
                      WHERE {f.sql} AND cohort_id != ''),
          scores AS (SELECT tenant_id, learner_id AS user_id,
                            groupArray((event_timestamp, assumeNotNull(readiness_score))) AS hist
                     FROM kpi_events
                     WHERE event_name = 'assessment_completed' AND learner_id != ''
                       AND readiness_score IS NOT NULL
                       AND event_timestamp <= {{now:DateTime64(3)}}
                       AND ({{t:String}} = '' OR tenant_id = {{t:String}})
                     GROUP BY tenant_id, user_id)
        SELECT countIf(before < {{low:Float64}}) AS den, countIf(latest < {{low:Float64}}) AS after
        FROM (
            SELECT arraySort(x -> x.1, arrayFilter(x -> x.1 <= iv.at, s.hist)) AS upto,
                   if(empty(upto), nan, upto[-1].2) AS before,
                   arraySort(x -> x.1, s.hist)[-1].2 AS latest
            FROM iv
            INNER JOIN members AS m ON m.tenant_id = iv.tenant_id AND m.cohort = iv.cohort
            INNER JOIN scores AS s ON s.tenant_id = m.tenant_id AND s.user_id = m.user_id
        )
        """,
        {**f.params, "t": scope.tenant_id or "", "since": since, "now": now, "low": LOW_READINESS},
    )[0]
    den = int(row["den"])
    return {"num": den - int(row["after"]), "den": den}


def _kpi(
    key: str,
    label: str,
    persona: str,
    value: float | int | None,
    unit: str,
    numerator: int | None,
    denominator: int | None,
    definition: str,
    previous: float | int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": key,
        "label": label,
        "persona": persona,
        "value": value,
        "unit": unit,
        "numerator": numerator,
        "denominator": denominator,
        "definition": definition,
    }
    if previous is not None:
        out["previous"] = previous
    return out


def describe(scope: Scope) -> dict[str, Any]:
    """What the response covers, so a screen or file can say it."""
    return {
        "role": scope.role,
        "tenant_id": scope.tenant_id,
        "learners": None if scope.learners is None else len(scope.learners),
        "programs": None if scope.programs is None else list(scope.programs),
        "program_id": scope.program_id,
        "cohort_id": scope.cohort_id,
        "user_id": scope.user_id,
        "aggregated_only": not scope.per_learner,
    }
