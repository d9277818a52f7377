"""Demo telemetry: a simulated population of learners, streamed to the API.

Used by ``skillstream up`` (live stream into the front door) and by tests and
benchmarks (deterministic with a seed). Tenants have programs and cohorts;
learners have a persona, an engagement propensity, and a day they drop off
(some never do). Activity follows a weekly rhythm (weekdays busier) and a
daily one; anonymous visits get identified at sign-in; a few users opt out
and back in; clients retry, so some batches repeat ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import signal
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from api.demo_history import HISTORY_FILE
from schemas.examples import example_event

log = logging.getLogger("skillstream.demo")

PLANNER = "career_changer_financial_planner_viewed"  # a student browses matches instead

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
    ("roadmap_task_assigned", 5),
    (PLANNER, 2),
)
REPORTS_PER_MANAGER = 25
# Eight chart weeks back to a Monday at most 55 days ago, plus margin.
BACKFILL_DAYS = 63
LEARNERS_PER_MENTOR = 40
# History goes in batches this big, this many at once: the front door's
# per-request work and Kafka's acks overlap, and its 503/429 push back.
BACKFILL_BATCH = 500
BACKFILL_IN_FLIGHT = 3
# A restart that left less than this unsent (a few hundred events) catches
# up in the live loop, without the dashboard's loading state.
CATCH_UP_QUIETLY = timedelta(days=1)
LEGACY_MARKER = "demo-backfilled"
DEMO_TENANTS = (
    "demo-acme",
    "demo-globex",
    "demo-initech",
)  # older run dirs: the whole history was sent


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
        tenants: tuple[str, ...] = DEMO_TENANTS,
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
            out.append((lr.tenant, _activity_event(lr, name, common, at, days_in, rng)))
        return out


# --- day plans: what a learner does on one day ------------------------------
# The score (streams/score.py) rewards, per 14 days: 8 sign-ins, 2 live
# sessions, 1 phase advance, 4 submissions, 6 lessons. A day plan draws those
# per learner and day from the learner's engagement, so history and the live
# stream agree, an engaged learner scores 70-100 and a disengaged one < 40,
# at about 5-9 events per learner-week (the history must stay small: ~20k
# events are on the chart within 30 s of `up` printing its URL).
PLAN_RATES = (  # (event, expected per week at engagement 1.0)
    ("session_started", 1.5),
    ("lesson_completed", 3.0),
    ("assignment_submitted", 2.0),
    ("live_session_attended", 1.0),
    ("program_phase_advanced", 0.5),
)
BROWSING = (  # events that do not score: keep the live stream busy between plans
    ("career_match_viewed", 6),
    ("assessment_completed", 3),
    ("task_completion_logged", 6),
    ("survey_response_submitted", 1),
    ("resume_parsed", 1),
    ("action_plan_accepted", 1),
    ("roadmap_task_assigned", 5),
    (PLANNER, 2),
)


def engagement(lr: Learner, day: date) -> float:
    """0..1: the learner's propensity lifted (most learners in a program are
    engaged), a slow population drift over the weeks, and a per-learner
    week-to-week wobble; fading in the last two weeks before a drop-off."""
    base = 0.3 + 0.75 * lr.propensity**0.7
    weeks = (day - lr.enrolled_at.date()).days / 7
    drift = 0.92 + 0.1 * math.sin(day.toordinal() / 9.0)  # slow up-and-down over ~8 weeks
    wobble = random.Random(f"{lr.user_id}|w{day.isocalendar()[1]}").uniform(0.8, 1.15)
    fade = 1.0
    if lr.drops_after_days is not None:
        left = lr.drops_after_days / 7 - weeks
        fade = max(0.15, min(1.0, left / 2))
    return max(0.0, min(1.0, base * drift * wobble * fade))


def day_plan(lr: Learner, day: date) -> list[tuple[datetime, str]]:
    """(time, event) the learner does on ``day``: deterministic per learner
    and day, so the back-fill and the live stream produce the same history."""
    start = lr.enrolled_at
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    day_end = day_start + timedelta(days=1)
    if day_end <= start:
        return []
    days_in = (day_start - start).total_seconds() / 86400
    if lr.drops_after_days is not None and days_in > lr.drops_after_days:
        return []
    rng = random.Random(f"{lr.user_id}|{day.isoformat()}")
    eng = engagement(lr, day)
    # weekday rhythm: weekdays carry most of the week (5 x 1.0 + 2 x 0.45 = 5.9)
    share = (1.0 if day.weekday() < 5 else 0.45) / 5.9
    plan: list[tuple[datetime, str]] = []
    for name, per_week in PLAN_RATES:
        lam = per_week * share * eng * (2.0 if name == "live_session_attended" else 1.0)
        if name == "live_session_attended" and day.weekday() not in (1, 3):
            continue  # live sessions on Tuesdays and Thursdays
        n = int(lam) + (rng.random() < lam - int(lam))
        if name == "program_phase_advanced" and n and days_in > 35 and rng.random() < 0.25:
            name = "program_completed"
        plan += [(_clock(rng, day_start), name) for _ in range(n)]
    if any(n != "session_started" for _, n in plan) and not any(
        n == "session_started" for _, n in plan
    ):
        plan.append((_clock(rng, day_start), "session_started"))  # doing work means signing in
    if day_start <= start < day_end:
        plan.append((start, "first_visit"))  # anonymous browsing, then sign-in
    return sorted((max(t, start), n) for t, n in plan)


def _clock(rng: random.Random, day_start: datetime) -> datetime:
    """A time of day: mostly office hours and evenings."""
    hour = min(23.99, max(0.0, rng.gauss(14.5, 3.5)))
    return day_start + timedelta(hours=hour)


def _keys(api_url: str, run_dir: str, tenants: list[str]) -> dict[str, str]:
    from core.secrets import load_secrets
    from core.settings import get_settings
    from ops.control import HttpControl

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


def _by_tenant(batch, rng: random.Random, size: int) -> list[tuple[str, list[dict]]]:
    """(tenant, events) chunks of at most ``size`` events, in the batch's order."""
    by_tenant: dict[str, list[dict]] = {}
    for tenant, ev in batch:
        by_tenant.setdefault(tenant, []).append(ev)
    chunks = []
    for tenant, events in by_tenant.items():
        if rng.random() < 0.05 and events:
            events.append(dict(events[0]))  # a client retry inside the batch
        chunks += [(tenant, events[i : i + size]) for i in range(0, len(events), size)]
    return chunks


def _send(client, key: str, events: list[dict], stop: threading.Event) -> dict[str, int]:
    """One batch; sent again after Retry-After while the front door pushes
    back (503: Kafka busy or away, 429: the tenant's rate), which is safe
    because an id accepted before comes back as a duplicate."""
    import httpx

    while not stop.is_set():
        wait = 1.0
        try:
            r = client.post(
                "/v1/events/batch",
                json={"events": events},
                headers={"Authorization": f"Bearer {key}"},
            )
        except httpx.HTTPError as exc:
            log.warning("post failed: %s", exc)
        else:
            if r.status_code == 200:
                return {k: len(v) for k, v in r.json().items()}
            log.warning("HTTP %s: %s", r.status_code, r.text[:200])
            if r.status_code not in (429, 503):
                break
            wait = float(r.headers.get("Retry-After", "1"))
        stop.wait(wait)
    return {}


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for k in totals:
        totals[k] += counts.get(k, 0)


def _post(client, keys: dict[str, str], batch, totals: dict[str, int], rng, stop) -> None:
    for tenant, events in _by_tenant(batch, rng, 100):
        _add(totals, _send(client, keys[tenant], events, stop))


def register_org(api_url: str, pop: Population) -> None:
    """Managers, mentors and program owners of every demo tenant, so each
    role has something to see (idempotent: links converge per key)."""
    from core.secrets import load_secrets
    from core.settings import get_settings
    from ops.control import HttpControl

    control = HttpControl(api_url, load_secrets(get_settings()).admin_secret)
    for t in pop.tenants:
        control.org_bulk(t, pop.org_links(t))


def register_sign_in(api_url: str, run_dir: Path) -> None:
    """The first demo tenant signs in through the demo's identity provider
    (ops/demo_idp.py), set up with the same operation as `tenant sso`."""
    from api.admin.operations import TENANT_SSO
    from core.secrets import load_secrets
    from core.settings import get_settings
    from ops.control import ControlError, HttpControl
    from ops.demo_idp import DEMO_ROLES

    path = run_dir / "demo-idp.json"
    if not path.exists():
        return
    idp = json.loads(path.read_text())
    control = HttpControl(api_url, load_secrets(get_settings()).admin_secret)
    mapping = {"roles": DEMO_ROLES, "user_claim": "employee_id"}
    for _ in range(50):  # the provider starts beside the API
        try:
            control.run(
                TENANT_SSO,
                tenant=idp["tenant"],
                issuer=idp["issuer"],
                client_id=idp["client_id"],
                client_secret=idp["client_secret"],
                domains=[f"{idp['tenant']}.example"],
                mapping=mapping,
            )
            return
        except ControlError as exc:
            if "identity provider unreachable" not in str(exc):
                raise
            time.sleep(0.2)
    log.warning("the demo's identity provider did not answer: no sign-in")


def plan_events(
    lr: Learner, at: datetime, name: str, nth: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """The events of one plan entry (``first_visit``: anonymous browsing, the
    sign-in that links the ids and, for students, onboarding); ``nth`` is
    the entry's place in the learner's day plan."""
    common = {"at": at, "user_id": lr.user_id, "anonymous_id": lr.anonymous_id}
    common["persona"] = lr.persona
    if name == "first_visit":
        out = [example_event("career_match_viewed", **{**common, "user_id": None})]
        out.append(example_event("session_started", **common))
        if lr.persona == "student":
            out.append(example_event("student_onboarding_completed", **common))
    else:
        extra = {} if name == "session_started" else {"program_id": lr.program_id}
        if extra:
            extra["cohort_id"] = lr.cohort_id
        out = [example_event(name, **common, **extra)]
    for k, ev in enumerate(out):
        ev["client_event_id"] = plan_event_id(lr, at, nth, k)
    return [(lr.tenant, ev) for ev in out]


def plan_event_id(lr: Learner, at: datetime, nth: int, k: int) -> str:
    """The same id for the same planned event in every run: history sent
    again after a restart is a duplicate, never a second event."""
    key = f"{lr.user_id}|{at.isoformat()}|{nth}|{k}"
    return "demo-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def planned_between(
    pop: Population, since: datetime, until: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """Every learner's planned events with since <= time < until, oldest first."""
    entries: list[tuple[datetime, int, int, str]] = []
    day = since.date()
    while day <= until.date():
        for i, lr in enumerate(pop.learners):
            plan = day_plan(lr, day)
            entries += [(t, i, j, n) for j, (t, n) in enumerate(plan) if since <= t < until]
        day += timedelta(days=1)
    entries.sort()
    return [ev for t, i, j, n in entries for ev in plan_events(pop.learners[i], t, n, j)]


@dataclass
class History:
    """What the demo has sent, kept in the run dir: a restarted demo builds
    the same learners (same anchor) and sends only what it had not sent,
    with the same event ids, so nothing counts twice. The dashboard reads
    the ``loading_*`` fields to say how far the history has come."""

    anchor: datetime  # the population's time line is built from it
    sent_until: datetime  # every plan before it was accepted
    tenants: list[str] = field(default_factory=list)
    loading_from: datetime | None = None  # the history this run sends ...
    loading_until: datetime | None = None  # ... oldest first
    finished_at: datetime | None = None  # when the last of it was accepted

    @classmethod
    def load(cls, run_dir: Path, now: datetime, days: int) -> History:
        path, legacy = run_dir / HISTORY_FILE, run_dir / LEGACY_MARKER
        if path.exists():
            raw = json.loads(path.read_text())
            at = {k: datetime.fromisoformat(raw[k]) for k in ("anchor", "sent_until")}
            return cls(at["anchor"], at["sent_until"], raw.get("tenants", []))
        if legacy.exists():  # history sent by an older demo, ids unknown: go on from now
            return cls(datetime.fromisoformat(legacy.read_text().strip()), now)
        return cls(now, now - timedelta(days=days))

    def save(self, run_dir: Path) -> None:
        raw = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in vars(self).items()}
        tmp = run_dir / f"{HISTORY_FILE}.tmp"
        tmp.write_text(json.dumps(raw))
        os.replace(tmp, run_dir / HISTORY_FILE)


def backfill(client, keys, pop: Population, totals, hist: History, run_dir: Path, stop) -> bool:
    """History for the chart from ``hist.sent_until`` to its ``loading_until``,
    oldest first (the worker's watermark never makes it late; ``skillstream
    up`` widens the late-arrival bounds in demo mode), as fast as the front
    door takes it; progress saved a day at a time. False when stopped."""
    until = hist.loading_until or hist.sent_until
    pending: deque[tuple[Future, datetime | None]] = deque()

    def settle() -> None:
        fut, day_to = pending.popleft()
        _add(totals, fut.result())
        if day_to and not stop.is_set():  # every chunk up to this day's last is in
            hist.sent_until = day_to
            hist.save(run_dir)
            log.info("backfilled to %s: %s", day_to.isoformat(timespec="seconds"), totals)

    with ThreadPoolExecutor(BACKFILL_IN_FLIGHT, thread_name_prefix="backfill") as pool:
        for tenant, events, day_to in _history_chunks(pop, hist.sent_until, until):
            if stop.is_set():
                break
            if len(pending) >= BACKFILL_IN_FLIGHT:
                settle()
            pending.append((pool.submit(_send, client, keys[tenant], events, stop), day_to))
        while pending:
            settle()
    if stop.is_set():
        return False
    hist.sent_until, hist.finished_at = until, datetime.now(UTC)
    hist.save(run_dir)
    return True


def _history_chunks(pop: Population, since: datetime, until: datetime):
    """(tenant, events, day_to) oldest first; ``day_to`` (else None) marks
    the last chunk of a day."""
    while since < until:
        day_to = min(until, since + timedelta(days=1))
        chunks = _by_tenant(planned_between(pop, since, day_to), pop.rng, BACKFILL_BATCH)
        for i, (tenant, events) in enumerate(chunks):
            yield tenant, events, day_to if i == len(chunks) - 1 else None
        since = day_to


def browsing(pop: Population, at: datetime, n: int) -> list[tuple[str, dict[str, Any]]]:
    """About ``n`` events that do not score, by enrolled learners who have not
    dropped off, more often by engaged ones; a few opt out and back in."""
    rng = pop.rng
    names = [n for n, _ in BROWSING]
    weights = [w for _, w in BROWSING]
    out: list[tuple[str, dict[str, Any]]] = []
    for _ in range(n):
        lr = rng.choice(pop.learners)
        days_in = (at - lr.enrolled_at).total_seconds() / 86400
        if days_in < 0 or (lr.drops_after_days is not None and days_in > lr.drops_after_days):
            continue
        if rng.random() > engagement(lr, at.date()):
            continue
        common = {"at": at, "user_id": lr.user_id, "anonymous_id": lr.anonymous_id}
        common["persona"] = lr.persona
        if rng.random() < 0.002:
            lr.opted_out = not lr.opted_out
            name = "settings_tracking_opt_out" if lr.opted_out else "settings_tracking_opt_in"
            out.append((lr.tenant, example_event(name, **common)))
            continue
        name = rng.choices(names, weights)[0]
        out.append((lr.tenant, _activity_event(lr, name, common, at, days_in, rng)))
    return out


def _activity_event(
    lr: Learner,
    name: str,
    common: dict[str, Any],
    at: datetime,
    days_in: float,
    rng: random.Random,
) -> dict:
    """One activity event with the properties its type carries."""
    if name == PLANNER and lr.persona != "career_changer":
        name = "career_match_viewed"
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
        ev["properties"]["task_id"] = f"task_{rng.randint(1, 12)}"
    if name == "roadmap_task_assigned":
        due = at + timedelta(days=rng.uniform(2, 10))
        ev["properties"] = {
            "task_id": f"task_{rng.randint(1, 12)}",
            "due_at": due.isoformat().replace("+00:00", "Z"),
        }
    if name == PLANNER:
        ev["properties"] = {
            "duration_ms": int(rng.lognormvariate(11.5, 0.8)),
            "session_id": f"{lr.user_id}-{at.date().isoformat()}",
        }
    if name == "survey_response_submitted":
        ev["properties"]["rating"] = rng.randint(1, 5)
    return ev


def main() -> None:
    import httpx

    from core.logs import setup_logging
    from core.settings import get_settings

    setup_logging("demo", get_settings())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run_dir = get_settings().run_dir
    api_url = os.environ["SKILLSTREAM_API_URL"]
    # Non-scoring browsing on top of the learners' plans: keeps it visibly live.
    rate = float(os.environ.get("DEMO_EVENTS_PER_S", "10"))
    backfill_days = int(os.environ.get("DEMO_BACKFILL_DAYS", str(BACKFILL_DAYS)))
    now = datetime.now(UTC)
    hist = History.load(run_dir, now, backfill_days)
    # Learners enrolled up to two weeks before the history starts, so the
    # oldest chart week already has a full 14-day score window behind it.
    pop = Population.build(
        learners_per_tenant=int(os.environ.get("DEMO_LEARNERS", "90")),
        start=hist.anchor - timedelta(days=backfill_days + 14),
    )
    # never older than the front door takes in demo mode
    hist.sent_until = max(hist.sent_until, now - timedelta(days=backfill_days))
    hist.tenants, hist.finished_at = pop.tenants, None
    loading = now - hist.sent_until > CATCH_UP_QUIETLY
    hist.loading_from, hist.loading_until = (hist.sent_until, now) if loading else (None, None)
    keys = _keys(api_url, str(run_dir), pop.tenants)
    register_org(api_url, pop)
    register_sign_in(api_url, run_dir)
    hist.save(run_dir)  # names the tenants: the dashboard waits for them and their org
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = httpx.Client(base_url=api_url, timeout=30)
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    if loading and backfill(client, keys, pop, totals, hist, run_dir, stop):
        log.info("history of %s loaded: %s", hist.loading_from, totals)
    live(client, keys, pop, totals, hist, run_dir, rate, stop)
    hist.save(run_dir)


def live(client, keys, pop: Population, totals, hist: History, run_dir: Path, rate, stop) -> None:
    """Plans as they come due (and any the back-fill left), plus browsing,
    once a second until stopped; progress saved every 30 s."""
    last_log = time.monotonic()
    while not stop.is_set():
        tick = time.monotonic()
        at = datetime.now(UTC)
        batch = planned_between(pop, hist.sent_until, at) + browsing(pop, at, int(rate * 2))
        _post(client, keys, batch, totals, pop.rng, stop)
        if not stop.is_set():
            hist.sent_until = at
        if time.monotonic() - last_log > 30:
            log.info("totals %s", totals)
            hist.save(run_dir)
            last_log = time.monotonic()
        stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))


if __name__ == "__main__":
    main()
