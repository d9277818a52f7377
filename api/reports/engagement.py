"""The engagement chart: per ISO week, the median engagement score against
the target, learners scored and at risk, weekly active learners, programs
tracked and the completion rate; tiles compare the last week with the one
before.

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

from datetime import UTC, date, datetime, timedelta
from typing import Any

from api.reports import summaries
from api.reports.common import (
    LATEST,
    FreshFn,
    describe,
    freshness,
    iso,
    latest_fields,
    tile,
    together,
)
from api.reports.scope import Filter, Scope
from sinks.store import Store
from streams.score import INACTIVE_DAYS

# One pass per learner and week over the weeks asked: the packed latest score
# row (0: none that week) and activity, then per week.
WEEKLY = """
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
PROGRAMS = """
    SELECT toString(week) AS wk, count() AS n_programs FROM (
        SELECT DISTINCT week, tenant_id, program_id FROM learner_week
        WHERE week >= {{lo:Date}} AND week <= {{hi:Date}} AND has({{weeks:Array(Date)}}, week)
          AND {where} AND active = 1 AND program_id != ''
    ) GROUP BY wk
"""
# For the completion rate: learners counted by their week of first activity
# and of first completion (earlier weeks collapse into the chart's first),
# summed up to each week by the caller.
FIRSTS = """
    SELECT toString(greatest(toMonday(fa), {{start:Date}})) AS w_active,
           if(fc = toDate(0), '', toString(greatest(toMonday(fc), {{start:Date}}))) AS w_done,
           count() AS n
    FROM (
        SELECT tenant_id, user_id, minIfMerge(first_active) AS fa,
               minIfMerge(first_done) AS fc
        FROM learner_firsts
        WHERE {where}
        GROUP BY tenant_id, user_id
        HAVING fa != toDate(0) AND fa <= {{today:Date}}
    )
    GROUP BY w_active, w_done
"""


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
    p = {"start": first.isoformat(), "today": today.isoformat(), **f.params}
    by_week, firsts, fresh = together(
        lambda: _weeks(store, scope, f, week_list, today),
        lambda: store.query(FIRSTS.format(where=f.sql), p),
        lambda: freshness(store, scope, sink_fresh),
    )
    series = [_point(w.isoformat(), by_week.get(w.isoformat()), firsts, target)
              for w in week_list]  # fmt: skip
    return {
        "scope": describe(scope),
        "weeks": weeks,
        "target": target,
        "series": series[-weeks:],
        "tiles": _tiles(series[-1], series[-2], _monday(today)),
        "computed_at": iso(datetime.now(UTC)),
        "data_fresh_as_of": iso(fresh),
    }


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _point(
    wk: str, s: dict[str, Any] | None, firsts: list[dict[str, Any]], target: float
) -> dict[str, Any]:
    """The chart's point for week ``wk`` from its figures ``s`` (None: no
    learner's row in scope) and the ``FIRSTS`` counts."""
    scored = s["learners"] if s else 0
    seen = sum(int(r["n"]) for r in firsts if r["w_active"] <= wk)
    done = sum(int(r["n"]) for r in firsts if r["w_done"] and r["w_done"] <= wk)
    return {
        "week": wk,
        "median_score": float(s["median_score"]) if scored else None,
        "target": target,
        "learners_scored": scored,
        "at_risk": s["at_risk"] if s else 0,
        "active_learners": s["n_active"] if s else 0,
        "programs_tracked": s["n_programs"] if s else 0,
        "completion_rate": round(done / seen, 4) if seen else None,
    }


def _tiles(cur: dict[str, Any], prev: dict[str, Any], monday: date) -> dict[str, dict]:
    """The current week's figures against the previous week's, each with its
    window (the ISO week so far; the completion rate counts up to today)."""
    week = f"this week so far (ISO week from Mon {monday.isoformat()}, UTC)"
    tiles = {
        "programs_tracked": tile(cur["programs_tracked"], prev["programs_tracked"]),
        "median_engagement": tile(cur["median_score"], prev["median_score"], pct=False),
        "weekly_active_learners": tile(cur["active_learners"], prev["active_learners"]),
        "completion_rate": tile(cur["completion_rate"], prev["completion_rate"], pct=False),
        "at_risk_learners": tile(cur["at_risk"], prev["at_risk"]),
    }
    for key, t in tiles.items():
        t["window"] = "all time, up to today" if key == "completion_rate" else week
    return tiles


def _weeks(
    store: Store, scope: Scope, f: Filter, week_list: list[date], today: date
) -> dict[str, dict[str, Any]]:
    """The chart's figures per week: closed weeks kept at their current
    write count are read back, the others computed (and kept), the current
    week always computed (api/reports/summaries.py)."""
    current = _monday(today)
    tenant = scope.tenant_id or ""
    key = summaries.scope_key(f, (WEEKLY, PROGRAMS, LATEST, INACTIVE_DAYS))
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
    """``WEEKLY`` and ``PROGRAMS`` over ``weeks`` (the bounds let the
    primary key skip the other weeks; ``has`` keeps the ones asked)."""
    p = {"weeks": [w.isoformat() for w in weeks], "lo": min(weeks).isoformat(),
         "hi": max(weeks).isoformat(), "today": today.isoformat(), "inactive": INACTIVE_DAYS,
         **f.params}  # fmt: skip
    weekly, programs = together(
        lambda: store.query(WEEKLY.format(where=f.sql, **latest_fields("l")), p),
        lambda: store.query(PROGRAMS.format(where=f.sql), p),
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
