"""Query: report latency for a tenant with 1M / 10M events vs a raw-events scan.

Rows are generated straight into a fresh embedded ClickHouse (INSERT ...
SELECT FROM numbers()), shaped like the pipeline's output: ``events``, then
``learner_daily`` and ``learner_scores`` aggregated from those events, plus a
second, smaller tenant so scoping has something to skip. Then, in the same
run:

* **engagement report** (``api.reports.engagement.engagement``, 8 weeks), the
  **learner list** (first page of 50, at-risk first) and the **KPIs**;
* **baseline**: a direct scan of the raw ``events`` table computing weekly
  active learners and event counts over the same 8 weeks.

p50/p95 over the scale's runs each, after two warm-up runs, for each report
(engagement, learner list, KPIs) and viewer (company admin, program owner,
manager of 20): the report's function called directly, so no result cache;
ratios report / baseline. The engagement chart's closed weeks are kept
after the first call per scope (api/reports/summaries.py), so its rows are
a returning viewer's; it is also timed as a scope's first view, with no
week kept. The same reports for a tenant without rows show
the engine's fixed cost per report (parsing, analysis, planning). Then the
sink's side: the write time of sink-like rounds every 500 ms alone, and
while 20 dashboards poll the three reports every 5 s, through the report
cache (api/reports/cache.py, keyed by round) and without it. Issue 29's
viewers: the first view of the reports kept as figures
(api/reports/figures.py: a company admin's and a program owner's); the
three viewers polling every 5 s through results kept ready while rounds
land every 500 ms (each report's poll latency, and how far the answer's
data are behind the newest round); 50
managers' scopes polled at once against the rounds' write time alone. Sizes per
scale: 1M (medium), 1M and 10M (full); 10k learners per 1M events, 52
weeks of history.
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
        SETTINGS max_partitions_per_insert_block = 0
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


def timed(fn: Callable[[], object], runs: int, before: Callable[[], object] = lambda: None) -> dict:
    for _ in range(2):
        fn()
    samples = []
    for _ in range(runs):
        before()
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


def scopes(tenant: str) -> dict:
    """The issue's three viewers: a company admin, the owner of one of the
    12 programs, a manager with 20 direct reports."""
    from api.reports.scope import Scope

    base = {"actor_id": "b", "tenant_id": tenant}
    return {
        "company_admin": Scope(role="company_admin", learners=None, programs=None, **base),
        "program_owner": Scope(role="program_owner", learners=None, programs=("prog-0",), **base),
        "manager": Scope(
            role="manager", learners=tuple(f"u{i}" for i in range(20)), programs=None, **base
        ),  # fmt: skip
    }


def reports(store, scope) -> dict[str, Callable[[], object]]:
    from api.reports.engagement import engagement
    from api.reports.kpis import kpis
    from api.reports.learners import learners

    return {
        "engagement": lambda: engagement(store, scope, weeks=8),
        "learners": lambda: learners(store, scope, page=1, page_size=50),
        "kpis": lambda: kpis(store, scope, days=30),
    }


def sink_rounds(store, tenant: str, seconds: float, viewers: int, cached: bool) -> dict:
    """The sink's side: a round (1,000 learner_daily + 1,000 learner_scores
    rows, as the sink writes them) every ``SINK_BATCH_MS`` (500 ms), while
    ``viewers`` dashboards of one company admin each poll the three reports
    every 5 s, staggered, through the report cache (keyed by round) or not.
    Reports the round's write time and the rows/s the rounds achieved."""
    import threading

    from api.reports.cache import ReportCache

    rounds = [0]
    cache = ReportCache(lambda: rounds[0], max_age_s=3600)
    stop = threading.Event()
    polls = [0]
    scope = scopes(tenant)["company_admin"]

    def viewer(offset: float) -> None:
        stop.wait(offset)
        while not stop.is_set():
            for name, fn in reports(store, scope).items():
                cache.get(cache.key(name, scope), fn) if cached else fn()
                polls[0] += 1
            stop.wait(5.0)

    threads = [threading.Thread(target=viewer, args=(5.0 * i / max(1, viewers),), daemon=True)
               for i in range(viewers)]  # fmt: skip
    for t in threads:
        t.start()
    rows, writes = 0, []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        started = time.perf_counter()
        batch = round_rows(tenant, rounds[0])
        tag = f"{tenant}-{viewers}-{cached}-{rounds[0]}"
        store.insert("learner_daily", batch[0], f"bq-d-{tag}")
        store.insert("learner_scores", batch[1], f"bq-s-{tag}")
        writes.append((time.perf_counter() - started) * 1000)
        rows += len(batch[0]) + len(batch[1])
        rounds[0] += 1
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - started)))
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    return {"rows_per_s": round(rows / elapsed), "rounds": rounds[0], "report_calls": polls[0],
            "round_write_p50_ms": round(percentile(writes, 50), 1),
            "round_write_p95_ms": round(percentile(writes, 95), 1)}  # fmt: skip


def kept_polling(store, tenant: str, seconds: float, viewers: dict[str, object]) -> dict:
    """Issue 29's viewers: sink-like rounds every 500 ms (as ``sink_rounds``)
    while each of ``viewers`` (name -> scope) polls the three reports every
    5 s through results kept ready (api/reports/cache.py, its keeper a
    thread refreshing every 100 ms as the API's does). Per report: the
    poll's latency, and how far its data are behind the newest round (the
    time since the first round the answer's computation had not seen was
    written; 0 when it had seen the newest). Also the rounds' write time."""
    import threading

    from api.reports.cache import ReportCache
    from core.threads import BackgroundThread

    rounds, written = [0], [time.perf_counter()]  # written[r]: when round r+1 landed
    cache = ReportCache(lambda: rounds[0], max_age_s=30, keep_viewed_s=300, interval_s=2)
    cache.refreshing = True

    def keep() -> None:
        while not keeper.stopping.wait(0.1):
            cache.refresh_due(keeper.stopping)

    keeper = BackgroundThread("bench-keeper", keep)
    keeper.start()
    stop = threading.Event()
    polls: dict[str, list[float]] = {}
    behind: list[float] = []

    def stamped(fn: Callable[[], object]) -> Callable[[], dict]:
        def compute() -> dict:
            seen = rounds[0]  # read before the queries, as the basis is
            return {"result": fn(), "seen": seen}

        return compute

    def viewer(name: str, scope: object, offset: float) -> None:
        stop.wait(offset)
        first = True  # a scope nobody viewed: computed on request, measured elsewhere
        while not stop.is_set():
            for report, fn in reports(store, scope).items():
                t = time.perf_counter()
                got = cache.get(cache.key(report, scope), stamped(fn))
                took = (time.perf_counter() - t) * 1000
                now, seen = time.perf_counter(), got["seen"]
                if not first:
                    polls.setdefault(f"{report}/{name}", []).append(took)
                    behind.append(0.0 if seen >= rounds[0] else (now - written[seen]) * 1000)
            first = False
            stop.wait(5.0)

    n = max(1, len(viewers))
    threads = [threading.Thread(target=viewer, args=(name, scope, 5.0 * i / n), daemon=True)
               for i, (name, scope) in enumerate(viewers.items())]  # fmt: skip
    for t in threads:
        t.start()
    writes = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        started = time.perf_counter()
        batch = round_rows(tenant, rounds[0])
        tag = f"{tenant}-kept-{n}-{rounds[0]}"
        store.insert("learner_daily", batch[0], f"bk-d-{tag}")
        store.insert("learner_scores", batch[1], f"bk-s-{tag}")
        writes.append((time.perf_counter() - started) * 1000)
        written.append(time.perf_counter())
        rounds[0] += 1
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - started)))
    stop.set()
    for t in threads:
        t.join()
    keeper.stop(30)
    return {
        "returning_polls": {k: {"n": len(v), "p50_ms": round(percentile(v, 50), 1),
                      "p95_ms": round(percentile(v, 95), 1)} for k, v in sorted(polls.items())},
        "behind_newest_round_p95_ms": round(percentile(behind, 95), 1) if behind else None,
        "behind_newest_round_max_ms": round(max(behind), 1) if behind else None,
        "rounds": rounds[0],
        "round_write_p50_ms": round(percentile(writes, 50), 1),
        "round_write_p95_ms": round(percentile(writes, 95), 1),
    }  # fmt: skip


def manager_scopes(tenant: str, n: int) -> dict[str, object]:
    """``n`` managers of 20 learners each, no two with a learner in common."""
    from api.reports.scope import Scope

    return {f"manager-{i}": Scope(role="manager", actor_id=f"m{i}", tenant_id=tenant,
                                  learners=tuple(f"u{20 * i + j}" for j in range(20)),
                                  programs=None) for i in range(n)}  # fmt: skip


def first_view_figures(store, tenant: str, runs: int) -> dict[str, dict]:
    """A first view of the reports kept as figures (a company admin's, a
    program owner's of one program): reading the row, after the figures
    were computed once."""
    from api.reports import figures

    out = {}
    for role, scope in scopes(tenant).items():
        for report, params in figures.KEPT.items():
            t = figures.target(scope, report, params)
            if t is None:
                continue  # a manager's reports are not kept as figures
            store.insert("report_figures", [figures.compute(store, t, report, None)])
            out[f"{report}/{role}"] = timed(
                lambda s=scope, r=report, p=params: figures.read(store, s, r, p), runs
            )
    return out


def round_rows(tenant: str, n: int, size: int = 1000) -> tuple[list, list]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    day = now.date()
    daily, scores = [], []
    for i in range(size):
        key = {"tenant_id": tenant, "user_id": f"u{(n * size + i) % 5000}", "day": day,
               "program_id": "prog-1", "cohort_id": "prog-1-c0"}  # fmt: skip
        comps = {"sign_ins": 1, "live_sessions": 0, "phase_advances": 0, "submissions": 1,
                 "lessons_completed": 2}  # fmt: skip
        daily.append({**key, **comps, "active_minutes": 3, "completions": 0, "events": 4,
                      "version": 10 + n, "updated_at": now})  # fmt: skip
        scores.append({**key, **comps, "score": 50, "at_risk": 0, "days_inactive": 0,
                       "kind": "live", "version": 10 + n, "computed_at": now})  # fmt: skip
    return daily, scores


def run(scale: Scale, ctx: Context) -> Result:
    from sinks.store import open_store

    result = Result("query")
    store = open_store(None, Path(tempfile.mkdtemp(prefix="bq-", dir=ctx.workdir)) / "ch")
    try:
        for size in scale.query_sizes:
            measure(store, scale, size, result)
    finally:
        store.close()
    return result


def measure(store, scale: Scale, size: int, result: Result) -> None:
    tenant = f"bench{size}"
    learners = max(50, size // 100)  # 10k learners per 1M events, 100k per 10M
    t0 = time.perf_counter()
    load(store, tenant, size, learners, days=364)
    load(store, f"other{size}", size // 10, max(5, learners // 10), days=364)
    load_s = time.perf_counter() - t0
    label = f"{size / 1e6:g}M events" if size >= 1_000_000 else f"{size:,} events"
    runs = scale.query_runs
    raw = timed(lambda: store.query(RAW_SCAN, {"t": tenant}), runs)
    timings: dict[str, dict] = {}
    for role, scope in scopes(tenant).items():
        for name, fn in reports(store, scope).items():
            m = timings[f"{name}/{role}"] = timed(fn, runs)
            kept = ", returning viewer (closed weeks kept)" if name == "engagement" else ""
            for q in ("p50", "p95"):
                result.rows.append(Row(f"{name} {q}, {role}{kept}, {label}", m[f"{q}_ms"],
                                       raw[f"{q}_ms"], "ms", "lower",
                                       "direct scan of raw events"))  # fmt: skip

    # The chart as the first viewer of a scope gets it: no closed week kept
    # yet (api/reports/summaries.py), every week computed.
    def forget() -> None:
        store.command("TRUNCATE TABLE engagement_weeks")

    for role, scope in scopes(tenant).items():
        m = timings[f"engagement, first view/{role}"] = timed(
            reports(store, scope)["engagement"], runs, before=forget
        )
        for q in ("p50", "p95"):
            result.rows.append(Row(f"engagement {q}, {role}, first view (no week kept), {label}",
                                   m[f"{q}_ms"], raw[f"{q}_ms"], "ms", "lower",
                                   "direct scan of raw events"))  # fmt: skip
    # The same reports for a tenant with no rows in this store: what the
    # engine costs before it reads a row (parsing, analysis, planning, index
    # analysis over the parts), against the loaded tenant's.
    empty = {f"{name}/{role}": timed(fn, runs)
             for role, scope in scopes(f"none{size}").items()
             for name, fn in reports(store, scope).items()}  # fmt: skip
    for key, m in empty.items():
        name, role = key.split("/")
        result.rows.append(Row(f"{name} p50, {role}, a tenant with no rows, {label}",
                               m["p50_ms"], timings[key]["p50_ms"], "ms", "lower",
                               "the same report, the loaded tenant"))  # fmt: skip
    seconds = 10 if scale.name == "small" else 30
    alone = sink_rounds(store, tenant, seconds, 0, cached=True)
    polled = {c: sink_rounds(store, tenant, seconds, 20, cached=c) for c in (True, False)}
    for c, got in polled.items():
        how = "cached" if c else "no cache"
        for q in ("p50", "p95"):
            result.rows.append(Row(f"sink round write {q}, 20 dashboards polling ({how}), {label}",
                                   got[f"round_write_{q}_ms"], alone[f"round_write_{q}_ms"],
                                   "ms", "lower", "the same rounds, nobody polling"))  # fmt: skip
    figures_first = first_view_figures(store, tenant, runs)
    for key, m in figures_first.items():
        report, role = key.split("/")
        for q in ("p50", "p95"):
            result.rows.append(Row(f"{report} {q}, {role}, first view (kept figures), {label}",
                                   m[f"{q}_ms"], raw[f"{q}_ms"], "ms", "lower",
                                   "direct scan of raw events"))  # fmt: skip
    # returning polls: 11 per viewer and report at full scale (the first, a
    # first view, aside)
    polled_s = 12 if scale.name == "small" else 60
    polling = kept_polling(store, tenant, polled_s, scopes(tenant))
    for key, m in polling["returning_polls"].items():
        report, role = key.split("/")
        result.rows.append(Row(f"{report} p95, {role} polling every 5 s (kept), {label}",
                               m["p95_ms"], raw["p95_ms"], "ms", "lower",
                               "direct scan of raw events"))  # fmt: skip
    result.rows.append(Row(f"polled data behind the newest round p95, {label}",
                           polling["behind_newest_round_p95_ms"], 5000, "ms", "lower",
                           "the issue's bound (5 s)"))  # fmt: skip
    fifty = kept_polling(store, tenant, polled_s, manager_scopes(tenant, 50))
    for q in ("p50", "p95"):
        result.rows.append(Row(f"sink round write {q}, 50 scopes polled (kept), {label}",
                               fifty[f"round_write_{q}_ms"], alone[f"round_write_{q}_ms"],
                               "ms", "lower", "the same rounds, nobody polling"))  # fmt: skip
    result.details[tenant] = {
        "first_view_kept_figures": figures_first,
        "kept_polling_three_viewers": polling,
        "kept_polling_50_scopes": fifty,
        "events": size,
        "learners": learners,
        "weeks_of_history": 52,
        "load_s": round(load_s, 1),
        "reports": timings,
        "reports_tenant_without_rows": empty,
        "baseline_raw_events_scan": raw,
        "sink_alone": alone,
        "sink_polled_cached": polled[True],
        "sink_polled_uncached": polled[False],
    }
