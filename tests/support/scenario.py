"""A telemetry scenario with every trap, and its ground truth computed here,
independently of the product code (only the payload shapes are shared).

Traps: duplicates inside a batch, across batches and replayed later (after
an API restart, so only the stream can catch them); late events (days old,
sent after newer ones); anonymous visitors identified later (anonymous
events before and after the link); a learner who opts out midway and back
in. The truth: which events count, per learner per day components, distinct
active learners per ISO week, totals per event type.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from schemas.dictionary import BY_NAME
from schemas.examples import example_event

COMPONENT_OF = {
    "session_started": "sign_ins",
    "live_session_attended": "live_sessions",
    "program_phase_advanced": "phase_advances",
    "assignment_submitted": "submissions",
    "lesson_completed": "lessons_completed",
}
ACTIONS = [
    "session_started",
    "lesson_completed",
    "lesson_completed",
    "assignment_submitted",
    "live_session_attended",
    "program_phase_advanced",
    "career_match_viewed",
]


@dataclass
class Scenario:
    batches: list[list[dict]]  # first pass, in send order
    replay: list[list[dict]]  # sent again later, after an API restart
    truth_events: list[dict] = field(default_factory=list)  # the ones that count


def build(seed: int, tenant_names: list[str], learners: int = 24, days: int = 6) -> Scenario:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    per_learner: dict[str, list[dict]] = {}
    opt_out_user = f"{tenant_names[0]}-u0"
    for t_i, tenant in enumerate(tenant_names):
        for i in range(learners):
            user = f"{tenant}-u{i}"
            anon = f"anon-{tenant}-{i}"
            program = f"prog-{i % 3}"
            evs: list[dict] = []
            identified_late = i % 4 == 1  # anonymous first, identified later
            for d in range(days):
                day_start = start + timedelta(days=d, hours=8)
                for k in range(rng.randint(0, 4)):
                    name = rng.choice(ACTIONS)
                    at = day_start + timedelta(minutes=37 * k + rng.randint(0, 30))
                    anonymous = identified_late and (d < days // 2 or rng.random() < 0.3)
                    evs.append(
                        example_event(
                            name,
                            client_event_id=f"{tenant}-{i}-{d}-{k}",
                            at=at,
                            user_id=None if anonymous else user,
                            anonymous_id=anon,
                            program_id=program,
                            cohort_id=f"{program}-c{i % 2}",
                        )
                    )
                if identified_late and d == days // 2:
                    evs.append(
                        example_event(
                            "session_started",
                            client_event_id=f"{tenant}-{i}-link",
                            at=day_start + timedelta(hours=5),
                            user_id=user,
                            anonymous_id=anon,
                            program_id=program,
                        )
                    )
            if user == opt_out_user:
                mid = start + timedelta(days=days // 2, hours=6)
                for cid, name, at in (
                    (f"{tenant}-{i}-optout", "settings_tracking_opt_out", mid),
                    (f"{tenant}-{i}-optin", "settings_tracking_opt_in", mid + timedelta(days=1)),
                ):
                    evs.append(
                        example_event(
                            name, client_event_id=cid, at=at, user_id=user, anonymous_id=anon
                        )
                    )
            evs.sort(key=lambda e: e["event_timestamp"])
            per_learner[user] = evs
        del t_i

    # Interleave learners into a send order; a few events arrive late (days
    # old, after newer ones), but never across an opt-out boundary of their
    # learner (the order an opt-out applies in is the learner's send order).
    stream: list[dict] = []
    queues = {u: list(evs) for u, evs in per_learner.items()}
    late: list[dict] = []
    while any(queues.values()):
        user = rng.choice([u for u, q in queues.items() if q])
        ev = queues[user].pop(0)
        if user != opt_out_user and rng.random() < 0.05:
            late.append(ev)
        else:
            stream.append(ev)
    stream += late  # late arrivals: sent after everything newer

    batches: list[list[dict]] = []
    i = 0
    while i < len(stream):
        n = rng.randint(20, 60)
        batch = list(stream[i : i + n])
        if batch and rng.random() < 0.5:
            batch.append(dict(rng.choice(batch)))  # duplicate inside the batch
        if batches and rng.random() < 0.5:
            batch.append(dict(rng.choice(batches[-1])))  # duplicate across batches
        batches.append(batch)
        i += n
    replay = [batches[j] for j in rng.sample(range(len(batches)), k=max(1, len(batches) // 5))]
    return Scenario(batches, replay, truth_events=_truth(stream, opt_out_user))


def _truth(stream: list[dict], opt_out_user: str) -> list[dict]:
    """The events that must count, in the order the stream sees a learner's events."""
    opted_out = False
    out = []
    for ev in stream:
        user = ev["user_id"]
        if user == opt_out_user:
            if ev["event_name"] == "settings_tracking_opt_out":
                opted_out = True
            elif ev["event_name"] == "settings_tracking_opt_in":
                opted_out = False
            elif opted_out and not BY_NAME[ev["event_name"]].essential:
                continue
        out.append(ev)
    return out


def learner_of(ev: dict) -> str:
    # anon-{tenant}-{i} -> {tenant}-u{i}: every anonymous visitor here is identified
    if ev["user_id"]:
        return ev["user_id"]
    tenant, i = ev["anonymous_id"].removeprefix("anon-").rsplit("-", 1)
    return f"{tenant}-u{i}"


def expected(truth: list[dict], tenant_ids: dict[str, str]) -> dict:
    """Ground truth in the shapes the tests compare."""
    daily: dict[tuple, Counter] = defaultdict(Counter)
    weekly: dict[str, set] = defaultdict(set)
    program_weekly: dict[str, set] = defaultdict(set)
    totals: Counter = Counter()
    for ev in truth:
        user = learner_of(ev)
        tenant = tenant_ids[user.rsplit("-u", 1)[0]]
        day = datetime.fromisoformat(ev["event_timestamp"].replace("Z", "+00:00")).date()
        c = daily[(tenant, user, day.isoformat())]
        c["events"] += 1
        comp = COMPONENT_OF.get(ev["event_name"])
        if comp:
            c[comp] += 1
        minutes = ev["properties"].get("duration_minutes")
        if minutes:
            c["active_minutes"] += minutes
        monday = day - timedelta(days=day.weekday())
        weekly[f"{tenant}|{monday.isoformat()}"].add(user)
        if ev.get("program_id"):
            program_weekly[f"{tenant}|{ev['program_id']}|{monday.isoformat()}"].add(user)
        totals[(tenant, ev["event_name"])] += 1
    return {
        "daily": {k: dict(v) for k, v in daily.items()},
        "weekly_active": {k: len(v) for k, v in weekly.items()},
        "program_weekly_active": {k: len(v) for k, v in program_weekly.items()},
        "totals": dict(totals),
    }


def week_monday(d: date) -> date:
    return d - timedelta(days=d.weekday())
