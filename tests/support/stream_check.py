"""Read what the pipeline wrote to ClickHouse in the shapes of scenario.expected."""

from __future__ import annotations

from schemas import dictionary

COMPONENTS = (
    "sign_ins", "live_sessions", "phase_advances", "submissions", "lessons_completed",
    "active_minutes", "events",
)  # fmt: skip


# platform events (a data-import job's telemetry): never a learner's
OPERATIONS = [e.name for e in dictionary.EVENTS if e.category == "operations"]


def observed(query, tenant_ids: list[str]) -> dict:
    """``query(sql, params) -> rows`` against the store that holds the data."""
    p = {"t": tenant_ids}
    daily = {}
    for r in query(
        "SELECT tenant_id, user_id, toString(day) AS day, "
        + ", ".join(COMPONENTS)
        + " FROM learner_daily FINAL WHERE tenant_id IN {t:Array(String)}",
        p,
    ):
        daily[(r["tenant_id"], r["user_id"], r["day"])] = {
            c: int(r[c]) for c in COMPONENTS if int(r[c])
        }
    weekly = {
        f"{r['tenant_id']}|{r['w']}": int(r["n"])
        for r in query(
            "SELECT tenant_id, toString(toMonday(day)) AS w, uniqExact(user_id) AS n"
            " FROM learner_daily FINAL WHERE tenant_id IN {t:Array(String)} AND events > 0"
            " GROUP BY tenant_id, w",
            p,
        )
    }
    program_weekly = {
        f"{r['tenant_id']}|{r['program_id']}|{r['w']}": int(r["n"])
        for r in query(
            "SELECT tenant_id, program_id, toString(week) AS w, sum(active_learners) AS n"
            " FROM program_weekly FINAL WHERE tenant_id IN {t:Array(String)}"
            " GROUP BY tenant_id, program_id, w",
            p,
        )
    }
    totals = {
        (r["tenant_id"], r["event_name"]): int(r["n"])
        for r in query(
            "SELECT tenant_id, event_name, count() AS n FROM events FINAL"
            " WHERE tenant_id IN {t:Array(String)} GROUP BY tenant_id, event_name",
            p,
        )
    }
    unattributed = query(
        "SELECT count() AS n FROM events FINAL WHERE tenant_id IN {t:Array(String)}"
        " AND learner_id IS NULL AND event_name NOT IN {ops:Array(String)}",
        {**p, "ops": OPERATIONS},
    )[0]["n"]
    return {
        "daily": daily,
        "weekly_active": weekly,
        "program_weekly_active": program_weekly,
        "totals": totals,
        "unattributed": int(unattributed),
    }


def diff(expected: dict, got: dict) -> list[str]:
    out = []
    for part in ("totals", "weekly_active", "program_weekly_active", "daily"):
        e, g = expected[part], got[part]
        for k in sorted(set(e) | set(g), key=str):
            if e.get(k) != g.get(k):
                out.append(f"{part} {k}: expected {e.get(k)} got {g.get(k)}")
    if got["unattributed"]:
        out.append(f"{got['unattributed']} events never attributed to a learner")
    return out
