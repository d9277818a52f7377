"""A small org with known rows in the analytics tables, and the report
numbers those rows imply, computed here independently of api/reports."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

FREE_TEXT = "the mentor was late again"


@dataclass
class Org:
    tenant_id: str
    users: list[str]
    program_of: dict[str, str]
    manager: str
    reports: list[str]  # the manager's direct reports
    mentor: str
    mentees: list[str]
    owner: str
    owned: list[str]  # programs
    learner: str
    # (user, day) -> (score, at_risk)
    scores: dict[tuple[str, date], tuple[int, int]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)


def monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def build(tenant_id: str, prefix: str, today: date, n: int = 12) -> Org:
    users = [f"{prefix}-u{i:02d}" for i in range(n)]
    program_of = {u: f"{prefix}-p{1 + i % 2}" for i, u in enumerate(users)}
    org = Org(
        tenant_id=tenant_id,
        users=users,
        program_of=program_of,
        manager=f"{prefix}-mgr",
        reports=users[0:4],
        mentor=f"{prefix}-mentor",
        mentees=users[4:7],
        owner=f"{prefix}-owner",
        owned=[f"{prefix}-p1"],
        learner=users[1],
    )
    prev = monday(today) - timedelta(days=3)  # a day inside the previous week
    for i, u in enumerate(users):
        # every learner has a score this week; two thirds also last week
        org.scores[(u, today)] = (10 + 7 * i, int(i % 4 == 0))
        if i % 3:
            org.scores[(u, prev)] = (20 + 5 * i, int(i % 5 == 0))
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for i, u in enumerate(users):
        org.events.append(_event(tenant_id, f"{u}-s", u, "session_started", now, None, {}))
        if i % 2 == 0:
            org.events.append(
                _event(
                    tenant_id,
                    f"{u}-srv",
                    u,
                    "survey_response_submitted",
                    now,
                    program_of[u],
                    {"survey_id": "s1", "rating": 2, "free_text": FREE_TEXT},
                )
            )
    return org


def _event(tenant, eid, user, name, at, program, props) -> dict:
    return {
        "tenant_id": tenant,
        "event_id": eid,
        "event_name": name,
        "event_timestamp": at,
        "received_at": at,
        "user_id": user,
        "anonymous_id": "anon-" + user,
        "learner_id": user,
        "persona": "student",
        "program_id": program,
        "cohort_id": None,
        "context_page": "/x",
        "essential": 0,
        "properties": json.dumps(props),
        "schema_version": 2,
        "retention_days": 730,
        "version": 1,
    }


def insert(store, org: Org) -> None:
    now = datetime.now(UTC)
    scores, daily = [], []
    for (u, d), (score, risk) in org.scores.items():
        common = {
            "tenant_id": org.tenant_id,
            "user_id": u,
            "day": d,
            "program_id": org.program_of[u],
            "cohort_id": org.program_of[u] + "-c1",
        }
        scores.append(
            {
                **common,
                "score": score,
                "at_risk": risk,
                "days_inactive": 0,
                "sign_ins": 1,
                "live_sessions": 0,
                "phase_advances": 0,
                "submissions": 0,
                "lessons_completed": 0,
                "kind": "live",
                "version": 1,
                "computed_at": now,
            }
        )
        daily.append(
            {
                **common,
                "sign_ins": 1,
                "live_sessions": 0,
                "phase_advances": 0,
                "submissions": 0,
                "lessons_completed": 0,
                "active_minutes": 5,
                "completions": int(u.endswith("0")),
                "events": 2,
                "version": 1,
                "updated_at": now,
            }
        )
    store.insert("learner_scores", scores)
    store.insert("learner_daily", daily)
    store.insert("events", org.events)


def links(org: Org) -> list[tuple[str, str, str]]:
    out = [("manager", org.manager, u) for u in org.reports]
    out += [("mentor", org.mentor, u) for u in org.mentees]
    out += [("program_owner", org.owner, p) for p in org.owned]
    return out


def visible(org: Org, role: str) -> set[str]:
    """Learners a role may see in this org (truth for the matrix)."""
    if role in ("platform_admin", "company_admin"):
        return set(org.users)
    if role == "program_owner":
        return {u for u in org.users if org.program_of[u] in org.owned}
    if role == "manager":
        return set(org.reports)
    if role == "mentor":
        return set(org.mentees)
    return {org.learner}


def expected_week(org: Org, learners: set[str], week: date) -> dict:
    latest: dict[str, tuple[date, int, int]] = {}
    for (u, d), (score, risk) in org.scores.items():
        if u in learners and monday(d) == week and (u not in latest or d > latest[u][0]):
            latest[u] = (d, score, risk)
    return {
        "median": statistics.median(s for _, s, _ in latest.values()) if latest else None,
        "at_risk": sum(r for _, _, r in latest.values()),
        "active": len(latest),
        "programs": len({org.program_of[u] for u in latest}),
    }
