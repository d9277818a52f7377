"""Demo telemetry: a simulated population of learners, streamed to the API.

Used by ``skillstream up`` (live stream into the front door) and by tests and
benchmarks (deterministic with a seed). Tenants have programs and cohorts;
learners have a persona, an engagement propensity, and a day they drop off
(some never do). Activity follows a weekly rhythm (weekdays busier) and a
daily one; anonymous visits get identified at sign-in; a few users opt out
and back in; clients retry, so some batches repeat ids.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.examples import example_event

log = logging.getLogger("skillstream.demo")

ACTIVITY = (  # (event, relative weight) for an active learner's actions
    ("lesson_completed", 30),
    ("live_session_attended", 8),
    ("assignment_submitted", 10),
    ("program_phase_advanced", 2),
    ("career_match_viewed", 6),
    ("assessment_completed", 3),
    ("task_completion_logged", 6),
    ("survey_response_submitted", 1),
    ("resume_parsed", 1),
    ("action_plan_accepted", 1),
)
REPORTS_PER_MANAGER = 25
LEARNERS_PER_MENTOR = 40


@dataclass
class Learner:
    user_id: str
    anonymous_id: str
    persona: str
    tenant: str
    program_id: str
    cohort_id: str
    propensity: float  # 0..1: how active
    drops_after_days: float | None  # None: never drops off
    enrolled_at: datetime
    opted_out: bool = False


@dataclass
class Population:
    learners: list[Learner]
    tenants: list[str]
    rng: random.Random = field(repr=False, default_factory=random.Random)
    programs_per_tenant: int = 4

    def org_links(self, tenant: str) -> list[tuple[str, str, str]]:
        """(relation, subject, object) for a tenant: two program owners with
        half the programs each, a manager per 25 learners (direct reports),
        a mentor per 40 learners (assigned learners)."""
        mine = [lr for lr in self.learners if lr.tenant == tenant]
        links = [
            ("program_owner", f"{tenant}-owner-{p % 2}", f"{tenant}-prog-{p}")
            for p in range(self.programs_per_tenant)
        ]
        for i, lr in enumerate(mine):
            links.append(("manager", f"{tenant}-mgr-{i // REPORTS_PER_MANAGER:03d}", lr.user_id))
            # mentors cut across managers: every 7th learner goes to the same mentor
            n_mentors = max(1, len(mine) // LEARNERS_PER_MENTOR)
            links.append(("mentor", f"{tenant}-mentor-{i % n_mentors:03d}", lr.user_id))
        return links

    @classmethod
    def build(
        cls,
        seed: int = 7,
        tenants: tuple[str, ...] = ("demo-acme", "demo-globex", "demo-initech"),
        learners_per_tenant: int = 1000,
        programs_per_tenant: int = 4,
        start: datetime | None = None,
    ) -> Population:
        rng = random.Random(seed)
        start = start or datetime.now(UTC) - timedelta(days=56)
        learners = []
        for t in tenants:
            for i in range(learners_per_tenant):
                prog = rng.randrange(programs_per_tenant)
                learners.append(
                    Learner(
                        user_id=f"{t}-usr-{i:05d}",
                        anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        persona="career_changer" if rng.random() < 0.3 else "student",
                        tenant=t,
                        program_id=f"{t}-prog-{prog}",
                        cohort_id=f"{t}-prog-{prog}-cohort-{rng.randrange(2)}",
                        propensity=rng.betavariate(2.0, 3.0),
                        drops_after_days=rng.uniform(7, 60) if rng.random() < 0.25 else None,
                        enrolled_at=start + timedelta(days=rng.uniform(0, 14)),
                    )
                )
        return cls(learners, list(tenants), rng, programs_per_tenant)

    @staticmethod
    def rhythm(at: datetime) -> float:
        """Relative activity: weekdays busier, evenings and nights quieter."""
        weekday = 1.0 if at.weekday() < 5 else 0.45
        hour = 0.35 + 0.65 * math.sin(math.pi * max(0.0, min(1.0, (at.hour - 6) / 16)))
        return weekday * hour

    def events_at(self, at: datetime, n_actions: int) -> list[tuple[str, dict[str, Any]]]:
        """About ``n_actions`` learner actions at time ``at``: (tenant, event) pairs."""
        rng = self.rng
        out: list[tuple[str, dict[str, Any]]] = []
        weights = [w for _, w in ACTIVITY]
        names = [n for n, _ in ACTIVITY]
        for _ in range(n_actions):
            lr = rng.choice(self.learners)
            if at < lr.enrolled_at:
                continue
            days_in = (at - lr.enrolled_at).total_seconds() / 86400
            if lr.drops_after_days is not None and days_in > lr.drops_after_days:
                continue
            if rng.random() > lr.propensity * self.rhythm(at):
                continue
            common = {
                "at": at,
                "user_id": lr.user_id,
                "anonymous_id": lr.anonymous_id,
                "persona": lr.persona,
            }
            if days_in < 1 and rng.random() < 0.5:
                # first visit: anonymous browsing, then sign-in links the ids
                out.append(
                    (lr.tenant, example_event("career_match_viewed", **{**common, "user_id": None}))
                )
            if rng.random() < 0.25:
                out.append((lr.tenant, example_event("session_started", **common)))
            if days_in < 1 and lr.persona == "student" and rng.random() < 0.4:
                out.append((lr.tenant, example_event("student_onboarding_completed", **common)))
            if rng.random() < 0.002:
                lr.opted_out = not lr.opted_out
                name = "settings_tracking_opt_out" if lr.opted_out else "settings_tracking_opt_in"
                out.append((lr.tenant, example_event(name, **common)))
                continue
            name = rng.choices(names, weights)[0]
            if name == "program_phase_advanced" and rng.random() < 0.1:
                name = "program_completed"
            ev = example_event(
                name,
                **common,
                program_id=lr.program_id,
                cohort_id=lr.cohort_id,
                opt_out_status=lr.opted_out,
            )
            if name == "assessment_completed":
                # readiness grows with time in the program, faster for engaged learners
                growth = days_in * 0.6 * lr.propensity
                ev["readiness_score"] = round(
                    min(100.0, 30 + 30 * lr.propensity + growth + 10 * rng.random()), 1
                )
            if name == "task_completion_logged":
                due = at + timedelta(days=rng.uniform(-3, 5) + 3 * lr.propensity)
                ev["properties"]["due_at"] = due.isoformat().replace("+00:00", "Z")
            if name == "survey_response_submitted":
                ev["properties"]["rating"] = rng.randint(1, 5)
            out.append((lr.tenant, ev))
        return out


def _keys(api_url: str, run_dir: str, tenants: list[str]) -> dict[str, str]:
    from ops.control import HttpControl
    from ops.secrets import load_secrets
    from ops.settings import get_settings

    path = os.path.join(run_dir, "demo.json")
    keys: dict[str, str] = {}
    if os.path.exists(path):
        with open(path) as f:
            keys = json.load(f)
    control = HttpControl(api_url, load_secrets(get_settings()).admin_secret)
    for t in tenants:
        if t not in keys:
            keys[t] = control.create_tenant(t)[1]
    with open(path, "w") as f:
        json.dump(keys, f)
    return keys


def _post(client, keys: dict[str, str], batch, totals: dict[str, int], rng) -> None:
    import httpx

    by_tenant: dict[str, list[dict]] = {}
    for tenant, ev in batch:
        by_tenant.setdefault(tenant, []).append(ev)
    for tenant, events in by_tenant.items():
        if rng.random() < 0.05 and events:
            events.append(dict(events[0]))  # a client retry inside the batch
        for chunk in range(0, len(events), 100):
            body = {"events": events[chunk : chunk + 100]}
            try:
                r = client.post(
                    "/v1/events/batch",
                    json=body,
                    headers={"Authorization": f"Bearer {keys[tenant]}"},
                )
            except httpx.HTTPError as exc:
                log.warning("post failed: %s", exc)
                continue
            if r.status_code == 200:
                for k in totals:
                    totals[k] += len(r.json()[k])
            else:
                log.warning("HTTP %s: %s", r.status_code, r.text[:200])


def register_org(api_url: str, pop: Population) -> None:
    """Managers, mentors and program owners of every demo tenant, so each
    role has something to see (idempotent: links converge per key)."""
    from ops.control import HttpControl
    from ops.secrets import load_secrets
    from ops.settings import get_settings

    control = HttpControl(api_url, load_secrets(get_settings()).admin_secret)
    for t in pop.tenants:
        control.org_bulk(t, pop.org_links(t))


def backfill(client, keys, pop: Population, totals, days: int, per_learner: float) -> None:
    """History for the chart: ``days`` days of past activity (within the
    front door's late-arrival bound), hour by hour, oldest first."""
    now = datetime.now(UTC)
    hours = days * 24
    per_hour = max(1, int(len(pop.learners) * per_learner / hours * 4))
    for h in range(hours, 0, -1):
        _post(client, keys, pop.events_at(now - timedelta(hours=h), per_hour), totals, pop.rng)
    log.info("backfilled %d days: %s", days, totals)


def main() -> None:
    import httpx

    from ops.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    api_url = os.environ["SKILLSTREAM_API_URL"]
    rate = float(os.environ.get("DEMO_EVENTS_PER_S", "150"))
    pop = Population.build(learners_per_tenant=int(os.environ.get("DEMO_LEARNERS", "1000")))
    keys = _keys(api_url, str(settings.run_dir), pop.tenants)
    register_org(api_url, pop)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = httpx.Client(base_url=api_url, timeout=30)
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    marker = settings.run_dir / "demo-backfilled"
    backfill_days = int(os.environ.get("DEMO_BACKFILL_DAYS", "6"))
    if backfill_days and not marker.exists():
        backfill(client, keys, pop, totals, backfill_days, per_learner=8.0)
        marker.write_text(datetime.now(UTC).isoformat())
    last_log = time.monotonic()
    while not stop.is_set():
        tick = time.monotonic()
        _post(client, keys, pop.events_at(datetime.now(UTC), int(rate * 2.5)), totals, pop.rng)
        if time.monotonic() - last_log > 30:
            log.info("totals %s", totals)
            last_log = time.monotonic()
        stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))


if __name__ == "__main__":
    main()
