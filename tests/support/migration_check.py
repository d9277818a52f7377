"""A store made by the schema before the read model (migrations up to 0007),
then migrated: the reports before (FINAL on the sink's tables) and after (the
read model) on the same rows, and again after more row versions arrive
through the materialized views. Run in its own process (chdb opens one data
path per process): ``python -m tests.support.migration_check PATH SEED``
prints one JSON object.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from api.reports import engagement as engagement_report
from api.reports import kpis as kpi_report
from api.reports import learners as learner_list
from api.reports.scope import Scope
from sinks.migrations import migrate
from sinks.store import EmbeddedStore
from tests.support import legacy_reports, reports_data

TENANT = "tm"
PROGRAMS = ("p1", "p2", "p3")
SORTS = ("-at_risk", "score", "-days_inactive", "user_id")
NEW_KPIS = ("readiness_delta_term", "intervention_effectiveness")
# the read model's reports, named as legacy_reports names them
READ_MODEL = SimpleNamespace(
    engagement=engagement_report.engagement, learners=learner_list.learners, kpis=kpi_report.kpis
)


def rows(rng: random.Random, today: date, users: int, first_version: int) -> tuple[list, list]:
    """Score and learner-day rows, several versions per learner-day. Counts
    only grow between versions, as the worker's running totals of a day do
    (a later call starts above any earlier one's); a day's program and
    completion are the same in every version (the read model's assumption:
    sinks/migrations/0008_read_model.sql)."""
    scores, daily = [], []
    now = datetime.now(UTC)
    for i in range(users):
        user = f"u{i:03d}"
        home = PROGRAMS[i % 3]
        for back in sorted(rng.sample(range(0, 75), rng.randint(1, 12))):
            day = today - timedelta(days=back)
            prog = PROGRAMS[(i + back) % 3] if (7 * i + back) % 10 == 0 else home
            common = {"tenant_id": TENANT, "user_id": user, "day": day, "program_id": prog,
                      "cohort_id": None if i % 7 == 0 else f"{prog}-c{i % 2}"}  # fmt: skip
            events = rng.choice((0, 0, 1, 2)) + 100 * (first_version > 1)
            done = int((i * 31 + back) % 23 == 0)
            for v in range(rng.randint(1, 3)):
                events += rng.randint(0, 2)
                version = first_version + 10 * back + v
                comps = {c: rng.randint(0, 5) for c in learner_list.COMPONENTS}
                scores.append({**common, **comps, "score": rng.randint(0, 100),
                               "at_risk": int(rng.random() < 0.3),
                               "days_inactive": rng.randint(0, 9), "kind": "live",
                               "version": version, "computed_at": now})  # fmt: skip
                daily.append({**common, **comps, "active_minutes": 1, "events": events,
                              "completions": done, "version": version,
                              "updated_at": now})  # fmt: skip
    return scores, daily


KPI_EVENTS = ("session_started", "student_onboarding_completed", "resume_parsed",
              "action_plan_accepted", "assessment_completed", "task_completion_logged",
              "lesson_completed", "roadmap_task_assigned",
              "career_changer_financial_planner_viewed")  # fmt: skip


def events(rng: random.Random, users: int, tag: str) -> list[dict]:
    """Events for the KPIs over the last 60 days; one in ten sent twice (a
    replay: same id, newer version), as the sink may write before merges."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    out = []
    for i in range(users):
        user = f"u{i:03d}"
        for k in range(rng.randint(1, 14)):
            name = rng.choice(KPI_EVENTS)
            at = now - timedelta(minutes=rng.randint(0, 60 * 24 * 60))
            props = {}
            if name in ("task_completion_logged", "roadmap_task_assigned"):
                props["task_id"] = f"task_{rng.randint(1, 4)}"
                if rng.random() < 0.8:
                    props["due_at"] = (at + timedelta(hours=rng.randint(-48, 96))).isoformat()
            if name == "career_changer_financial_planner_viewed":
                props["duration_ms"] = rng.randint(5_000, 600_000)
                props["session_id"] = rng.choice((None, f"s{rng.randint(1, 3)}"))
            row = reports_data._event(TENANT, f"{tag}-{user}-{k}", user, name, at,
                                      PROGRAMS[i % 3], props)  # fmt: skip
            row["persona"] = "student" if i % 4 else "career_changer"
            row["plan_id"] = f"plan_{i % 2}"
            if name == "assessment_completed":
                row["readiness_score"] = float(rng.randint(20, 95))
            out.append(row)
            if rng.random() < 0.1:
                out.append({**row, "version": 2})
    return out


def mentor_links(users: int) -> list[dict]:
    now = datetime.now(UTC)
    return [{"tenant_id": TENANT, "relation": "mentor", "subject_id": "m1",
             "object_id": f"u{i:03d}", "deleted": 0, "changed_by": "t", "changed_at": now,
             "version": 1} for i in range(0, users, 3)]  # fmt: skip


def scopes() -> dict[str, Scope]:
    base = {"actor_id": "x", "tenant_id": TENANT}
    learners = tuple(f"u{i:03d}" for i in range(0, 40, 2))
    return {
        "company_admin": Scope(role="company_admin", learners=None, programs=None, **base),
        "program_owner": Scope(role="program_owner", learners=None, programs=("p1",), **base),
        "manager": Scope(role="manager", learners=learners, programs=None, **base),
        "cohort": Scope(
            role="company_admin",
            learners=None,
            programs=None,
            program_id="p2",
            cohort_id="p2-c1",
            **base,
        ),  # fmt: skip
    }


def figure(item: dict) -> dict:
    """A tile's or KPI's figures, without its wording (label, window)."""
    return {k: v for k, v in item.items() if k not in ("label", "window")}


def kpis(store, module, names: tuple[str, ...]) -> dict:
    now = datetime.now(UTC)
    out = {}
    for name in names:
        for days in (7, 30, 90):
            got = module.kpis(store, scopes()[name], days=days, now=now)
            # KPIs that came with the read model: nothing to compare them with
            out[f"{name}/kpis/{days}"] = [figure(k) for k in got["kpis"]
                                          if k["key"] not in NEW_KPIS]  # fmt: skip
    return out


def reports(store, module) -> dict:
    out = {}
    for name, scope in scopes().items():
        eng = module.engagement(store, scope, weeks=10)
        tiles = {k: figure(v) for k, v in eng["tiles"].items()}
        out[f"{name}/engagement"] = {"series": eng["series"], "tiles": tiles}
        for sort in SORTS:
            for at_risk in (None, True):
                got = module.learners(store, scope, page=1, page_size=25, sort=sort,
                                      at_risk=at_risk)  # fmt: skip
                out[f"{name}/learners/{sort}/{at_risk}"] = [got["total"], got["items"]]
        page9 = module.learners(store, scope, page=9, page_size=25)
        out[f"{name}/learners/past-end"] = [page9["total"], page9["items"]]
    return out


def insert(store, batches: tuple[list, list]) -> None:
    store.insert("learner_scores", batches[0])
    store.insert("learner_daily", batches[1])


def main(path: str, seed: int) -> dict:
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    store = EmbeddedStore(Path(path))
    migrate(store, upto=7)
    insert(store, rows(rng, today, 60, 1))
    store.insert("events", events(rng, 60, "a"))
    store.insert("org_links", mentor_links(60))
    # before the read model, a program scope on events reads learner_daily
    plain = ("company_admin", "manager")
    before = {**reports(store, legacy_reports), **kpis(store, legacy_reports, plain)}
    applied = migrate(store)
    after = {**reports(store, READ_MODEL), **kpis(store, READ_MODEL, plain)}
    # more versions of the same days and new days, through the views
    insert(store, rows(rng, today, 70, 5))
    store.insert("events", events(rng, 70, "b"))
    every = tuple(scopes())
    later_legacy = {**reports(store, legacy_reports), **kpis(store, legacy_reports, every)}
    later = {**reports(store, READ_MODEL), **kpis(store, READ_MODEL, every)}
    store.close()
    return {"applied": applied, "before": before, "after": after,
            "later_legacy": later_legacy, "later": later}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2])), default=str))
