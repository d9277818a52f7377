"""Windowed engagement aggregates kept in Faust tables.

* learner_day: event-time tumbling windows of one UTC day per learner:
  sign-ins, live sessions, phase advances, submissions, lessons completed,
  active minutes, completions, events.
* program_week: per program per ISO week and per source partition: the
  distinct active learners and completions (membership in its own table).
  A learner's events live on one partition, so partials are disjoint and
  sum exactly in ClickHouse.

Each update returns the full new row with a per-key version, so a replay
converges (ReplacingMergeTree keeps the highest version). A learner's
events come from one partition per topic, in order, so each row remembers
the last source offset it applied per topic: a record delivered again after
a crash changes nothing, whatever the restored state already holds.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from core.keys import learner_key
from streams import score as scoring
from streams.records import iso_day, week_of

COUNTERS = (
    "sign_ins",
    "live_sessions",
    "phase_advances",
    "submissions",
    "lessons_completed",
    "active_minutes",
    "completions",
    "events",
)


def learner_day_key(tenant: str, user: str, day: int) -> str:
    # also the row's key in aggregates.learner_daily, the table's changelog
    return f"{learner_key(tenant, user)}:{iso_day(day)}"


def update_learner_day(
    table: MutableMapping[str, Any], rec: dict, source: str = "", offset: float = -1
) -> dict:
    """The learner's day with this event counted: the full row (plus the
    offsets applied per source, and the live score once the checkpoint adds
    it), which is both the table's value and the learner_daily record."""
    tenant, user, day = rec["tenant_id"], rec["learner_id"], rec["event_day"]
    key = learner_day_key(tenant, user, day)
    cur = table.get(key)
    applied = dict(cur.get("applied") or {}) if cur else {}
    if cur and offset >= 0 and offset <= applied.get(source, -1):
        return cur  # already applied before a crash
    applied[source] = offset
    new = dict(cur) if cur else {
        "tenant_id": tenant, "user_id": user, "day": iso_day(day), "program_id": None,
        "cohort_id": None, **dict.fromkeys(COUNTERS, 0), "version": 0,
    }  # fmt: skip
    new["events"] += 1
    if rec.get("component"):
        new[rec["component"]] += 1
    minutes = rec["properties"].get("duration_minutes")
    if isinstance(minutes, int) and minutes > 0:
        new["active_minutes"] += minutes
    if rec["event_name"] == "program_completed":
        new["completions"] += 1
    new["version"] += 1
    new["applied"] = applied
    new["program_id"] = rec.get("program_id") or new["program_id"]
    new["cohort_id"] = rec.get("cohort_id") or new["cohort_id"]
    new.pop("score", None)  # the checkpoint computes it again
    table[key] = new
    return new


def _week_row(tenant: str, program: str, week: int, partition: int, state: dict) -> dict:
    return {
        "tenant_id": tenant,
        "program_id": program,
        "week": iso_day(week),
        "src_partition": partition,
        "active_learners": state["active"],
        "completions": state["completed"],
        "version": state["v"],
    }


def update_program_week(
    table: MutableMapping[str, Any],
    members: MutableMapping[str, Any],
    rec: dict,
    partition: int,
    source: str = "",
    offset: float = -1,
) -> dict | None:
    """The new row if this event changed the week, else None.

    The week row holds counters only; who is counted lives in ``members``,
    one small key per learner (and per completer), so an update costs the
    same with 10 or 100,000 learners in the program. A record delivered
    again re-emits the row (its first emit may have been lost); the row's
    applied offset per source (records arrive in order) keeps it from
    counting twice.
    """
    program = rec.get("program_id")
    if not program:
        return None
    tenant, user = rec["tenant_id"], rec["learner_id"]
    week = week_of(rec["event_day"])
    key = f"{tenant}|{program}|{week}|{partition}"
    cur = table.get(key) or {"active": 0, "completed": 0, "v": 0, "applied": {}}
    applied = dict(cur.get("applied") or {})
    if offset >= 0 and offset <= applied.get(source, -1):
        return _week_row(tenant, program, week, partition, cur)
    added = {"active": f"{key}|a|{user}"}
    if rec["event_name"] == "program_completed":
        added["completed"] = f"{key}|c|{user}"
    new = {**cur}
    mark = f"{source}@{offset}"
    for counter, member in added.items():
        # Absent, or added by this very record before a crash that lost the
        # counter update (the counter's applied offset says it is not in).
        if members.get(member) in (None, mark):
            members[member] = mark
            new[counter] += 1
    if new == cur:
        return None
    new["v"] = cur["v"] + 1
    applied[source] = offset
    new["applied"] = applied
    table[key] = new
    return _week_row(tenant, program, week, partition, new)


SCORE_LOOKBACK_DAYS = scoring.WINDOW_DAYS + scoring.INACTIVE_DAYS


def learner_score_row(
    lookup: Callable[[str], Any],
    tenant: str,
    user: str,
    day: int,
    kind: str,
    version: int,
    computed_at_ms: int,
) -> dict:
    """The learner's score on ``day`` from the days before it (``lookup``
    reads the learner-day table)."""
    days: dict[int, dict] = {}
    program = cohort = None
    for d in range(day - SCORE_LOOKBACK_DAYS, day + 1):
        cur = lookup(learner_day_key(tenant, user, d))
        if cur:
            days[d] = cur
            program = cur.get("program_id") or program
            cohort = cur.get("cohort_id") or cohort
    s = scoring.compute(days, day)
    return {
        "tenant_id": tenant,
        "user_id": user,
        "day": iso_day(day),
        "program_id": program,
        "cohort_id": cohort,
        "score": s.score,
        "at_risk": int(s.at_risk),
        "days_inactive": s.days_inactive,
        **s.totals,
        "kind": kind,
        "version": version,
        "computed_at": computed_at_ms,
    }
