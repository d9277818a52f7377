"""Report latency for a tenant with 1M events, against a raw-events scan.

Rows are generated straight into a fresh embedded ClickHouse (INSERT ...
SELECT FROM numbers()), shaped like the pipeline's output: ``events``, then
``learner_daily`` and ``learner_scores`` aggregated from those events, plus a
second, smaller tenant so scoping has something to skip. Then, in the same
run:

* **engagement report** (``api.reports.queries.engagement``, 8 weeks, as a
  company_admin) and the **learner list** (first page of 50, at-risk first);
* **baseline**: a direct scan of the raw ``events`` table computing weekly
  active learners and event counts over the same 8 weeks.

p50/p95 over ``--runs`` runs each, after warm-up; ratios report / baseline.

    python -m bench.query [--events 1000000] [--learners 5000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ops.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
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
    samples.sort()
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--learners", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()

    from api.reports import queries
    from api.reports.scope import Scope
    from sinks.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(None, Path(tmp) / "ch")
        t0 = time.perf_counter()
        load(store, "bench", args.events, args.learners)
        load(store, "other", args.events // 10, args.learners // 10)
        load_s = time.perf_counter() - t0
        counts = {
            t: store.query(
                f"SELECT count() AS n FROM {t} WHERE tenant_id = 'bench'"  # fixed names
            )[0]["n"]
            for t in ("events", "learner_daily", "learner_scores")
        }
        scope = Scope(role="company_admin", actor_id="b", tenant_id="bench", learners=None,
                      programs=None)  # fmt: skip
        engagement = timed(lambda: queries.engagement(store, scope, weeks=8), args.runs)
        learners = timed(
            lambda: queries.learners(store, scope, page=1, page_size=50, sort="-at_risk"),
            args.runs,
        )
        baseline = timed(
            lambda: store.query(
                "SELECT toMonday(event_timestamp) AS w, uniqExact(learner_id) AS wal,"
                " count() AS n FROM events FINAL WHERE tenant_id = {t:String}"
                " AND event_timestamp >= now64(3) - INTERVAL 56 DAY GROUP BY w ORDER BY w",
                {"t": "bench"},
            ),
            args.runs,
        )
        store.close()

    result = {
        "scenario": "query",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} cores={__import__('os').cpu_count()}, "
        f"Python {platform.python_version()}",
        "tenant_rows": counts,
        "load_s": round(load_s, 1),
        "engagement_report": engagement,
        "learner_list": learners,
        "baseline_raw_events_scan": baseline,
        "ratio_engagement_vs_raw_p50": round(engagement["p50_ms"] / baseline["p50_ms"], 3),
        "ratio_learners_vs_raw_p50": round(learners["p50_ms"] / baseline["p50_ms"], 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC).date().isoformat()}-query.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
