"""Query: report latency for a tenant with 1M / 10M events vs a raw-events scan.

Rows are generated straight into a fresh embedded ClickHouse (INSERT ...
SELECT FROM numbers()), shaped like the pipeline's output: ``events``, then
``learner_daily`` and ``learner_scores`` aggregated from those events, plus a
second, smaller tenant so scoping has something to skip. Then, in the same
run:

* **engagement report** (``api.reports.queries.engagement``, 8 weeks, as a
  company_admin) and the **learner list** (first page of 50, at-risk first);
* **baseline**: a direct scan of the raw ``events`` table computing weekly
  active learners and event counts over the same 8 weeks.

p50/p95 over the scale's runs each, after two warm-up runs; ratios report /
baseline. Sizes per scale: 1M (medium), 1M and 10M (full).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Context, Result, Row, Scale, percentile

NAMES = (
    "['session_started','lesson_completed','lesson_completed','assignment_submitted',"
    "'live_session_attended','program_phase_advanced','career_match_viewed',"
    "'task_completion_logged','program_completed']"
)


def load(store, tenant: str, events: int, learners: int, days: int = 56) -> None:
    store.command(
        f"""
        INSERT INTO events (tenant_id, event_id, event_name, event_timestamp, received_at,
            user_id, anonymous_id, learner_id, persona, program_id, cohort_id, context_page,
            essential, properties, schema_version, retention_days, version)
        SELECT {{t:String}}, concat('e', toString(number)),
               arrayElement({NAMES}, 1 + (cityHash64(number, 1) % 9)) AS name,
               now64(3) - toIntervalSecond(cityHash64(number, 2) % ({days} * 86400)) AS ts,
               ts, concat('u', toString(cityHash64(number, 3) % {{l:UInt32}})) AS uid,
               concat('a-', uid), uid, 'student',
               concat('prog-', toString(cityHash64(uid) % 12)),
               concat('prog-', toString(cityHash64(uid) % 12), '-c', toString(cityHash64(uid) % 2)),
               '/x', name = 'session_started', '{{}}', 2, 730, 1
        FROM numbers({{n:UInt64}})
        """,
        {"t": tenant, "n": events, "l": learners},
    )
    store.command(
        """
        INSERT INTO learner_daily
        SELECT tenant_id, assumeNotNull(learner_id), toDate(event_timestamp) AS day,
               any(program_id), any(cohort_id),
               countIf(event_name = 'session_started'), countIf(event_name = 'live_session_attended'),
               countIf(event_name = 'program_phase_advanced'), countIf(event_name = 'assignment_submitted'),
               countIf(event_name = 'lesson_completed'), 0, countIf(event_name = 'program_completed'),
               count(), 1, now64(3)
        FROM events WHERE tenant_id = {t:String}
        GROUP BY tenant_id, learner_id, day
        """,  # noqa: E501
        {"t": tenant},
    )
    # one score row per learner-day, like the worker's live rows
    store.command(
        """
        INSERT INTO learner_scores
        SELECT tenant_id, user_id, day, program_id, cohort_id,
               toUInt8(cityHash64(user_id, day) % 101) AS s, toUInt8(s < 40), 0,
               sign_ins, live_sessions, phase_advances, submissions, lessons_completed,
               'live', 1, now64(3)
        FROM learner_daily FINAL WHERE tenant_id = {t:String}
        """,
        {"t": tenant},
    )


def timed(fn: Callable[[], object], runs: int) -> dict:
    for _ in range(2):
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {
        "runs": runs,
        "p50_ms": round(percentile(samples, 50), 1),
        "p95_ms": round(percentile(samples, 95), 1),
    }


RAW_SCAN = (
    "SELECT toMonday(event_timestamp) AS w, uniqExact(learner_id) AS wal,"
    " count() AS n FROM events FINAL WHERE tenant_id = {t:String}"
    " AND event_timestamp >= now64(3) - INTERVAL 56 DAY GROUP BY w ORDER BY w"
)


def run(scale: Scale, ctx: Context) -> Result:
    from api.reports import queries
    from api.reports.scope import Scope
    from sinks.store import open_store

    result = Result("query")
    store = open_store(None, Path(tempfile.mkdtemp(prefix="bq-", dir=ctx.workdir)) / "ch")
    try:
        for size in scale.query_sizes:
            tenant = f"bench{size}"
            learners = max(50, size // 200)  # 5,000 learners per 1M events
            t0 = time.perf_counter()
            load(store, tenant, size, learners)
            load(store, f"other{size}", size // 10, max(5, learners // 10))
            load_s = time.perf_counter() - t0
            scope = Scope(role="company_admin", actor_id="b", tenant_id=tenant, learners=None,
                          programs=None)  # fmt: skip
            runs = scale.query_runs
            engagement = timed(lambda s=scope: queries.engagement(store, s, weeks=8), runs)
            learners_t = timed(
                lambda s=scope: queries.learners(store, s, page=1, page_size=50, sort="-at_risk"),
                scale.query_runs,
            )
            raw = timed(lambda t=tenant: store.query(RAW_SCAN, {"t": t}), scale.query_runs)
            label = f"{size / 1e6:g}M events" if size >= 1_000_000 else f"{size:,} events"
            for name, m in (("engagement report", engagement), ("learner list", learners_t)):
                for q in ("p50", "p95"):
                    result.rows.append(
                        Row(
                            f"{name} {q}, {label}",
                            m[f"{q}_ms"],
                            raw[f"{q}_ms"],
                            "ms",
                            "lower",
                            "direct scan of raw events",
                        )  # fmt: skip
                    )
            result.details[tenant] = {
                "events": size,
                "learners": learners,
                "load_s": round(load_s, 1),
                "engagement_report": engagement,
                "learner_list": learners_t,
                "baseline_raw_events_scan": raw,
            }
    finally:
        store.close()
    return result
