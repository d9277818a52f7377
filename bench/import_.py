"""Import: a year of history from a file → every event queryable.

``N`` events (the scale's ``import_events``) over the last year, learners
scaled with ``N`` (one per 200 events, at least 50), written three ways with
the same content: NDJSON.gz, CSV (a ``properties`` column of JSON) and
Parquet. On the bench Kafka, with the worker and the sink running (started
and warmed up by a small import of another tenant first):

* **ours**: ``skillstream import history.ndjson.gz`` (a subprocess, as an
  operator runs it), timed from its start until ``learner_daily`` holds every
  event (``sum(events)`` = N); its send phase (read, validate, send: the
  import's own events/s); its peak RSS against the same command importing
  100 events (the warm-up: what the file's size adds);
* **baseline**: the raw producer writing the same events (validated,
  encoded and sent as the front door does, in requests of 100;
  bench/events.py), timed until Kafka acknowledged them: what getting the
  events into Kafka costs without reading a file or applying them;
* the same file again (adds nothing, at once), then the CSV and Parquet files
  (other files, the same events: the worker's dedupe counts each once), each
  one's send phase against the NDJSON one's; one ``data_import_completed``
  per import (three);
* totals: ``learner_daily`` per event day against the generated events, after
  every import.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    Context,
    Result,
    Row,
    Scale,
    child_env,
    fresh_settings,
    peak_rss_mb,
    start_worker,
    stop,
)
from core.settings import PROJECT_ROOT, Settings

KINDS = ("lesson_completed", "session_started", "assignment_submitted", "live_session_attended")
COLUMNS = ("event_name", "client_event_id", "event_timestamp", "anonymous_id", "user_id",
           "persona", "context_page", "program_id", "opt_out_status", "properties")  # fmt: skip


def history(n: int, seed: int = 8) -> list[dict]:
    """``n`` events of the last year (up to two days ago), in time order."""
    rng = random.Random(seed)
    learners = max(50, n // 200)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    out = []
    for i in range(n):
        u = rng.randrange(learners)
        kind = KINDS[rng.randrange(len(KINDS))]
        props = {
            "lesson_completed": {"lesson_id": f"les_{i % 40}", "duration_minutes": 5 + i % 30},
            "session_started": {"auth_method": "sso"},
            "assignment_submitted": {"assignment_id": f"asg_{i % 25}", "late": i % 9 == 0},
            "live_session_attended": {"session_id": f"live_{i % 12}", "duration_minutes": 45},
        }[kind]
        at = end - timedelta(seconds=rng.randrange(365 * 86400))
        out.append({
            "event_name": kind, "client_event_id": f"h{seed}-{i}",
            "event_timestamp": at.isoformat().replace("+00:00", "Z"),
            "anonymous_id": f"anon-{u}", "user_id": f"u{u}",
            "persona": "student" if u % 3 else "career_changer", "context_page": "/learn",
            "program_id": f"prog_{u % 5}", "opt_out_status": False, "properties": props,
        })  # fmt: skip
    out.sort(key=lambda e: e["event_timestamp"])
    return out


def write_files(events: list[dict], folder: Path) -> dict[str, Path]:
    """The same events as NDJSON.gz, CSV and Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = {f: folder / f"history.{f}" for f in ("ndjson.gz", "csv", "parquet")}
    with gzip.open(paths["ndjson.gz"], "wb", compresslevel=6) as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")).encode() + b"\n")
    flat = [{**e, "properties": json.dumps(e["properties"])} for e in events]
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(flat)
    cols = {c: [r[c] for r in flat] for c in COLUMNS}
    pq.write_table(pa.table(cols), paths["parquet"], row_group_size=50_000)
    return paths


def by_day(events: list[dict]) -> dict[str, int]:
    return dict(Counter(e["event_timestamp"][:10] for e in events))


def run_import(settings: Settings, path: Path, tenant: str, timeout_s: float) -> dict:
    """``skillstream import`` as a subprocess: its wall time, peak RSS, output."""
    cmd = [sys.executable, "-m", "ops.cli", "import", str(path), "--tenant", tenant,
           "--no-progress", "--wait-s", str(int(timeout_s))]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=child_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    rss = 0.0
    while proc.poll() is None:
        rss = max(rss, peak_rss_mb(proc.pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"import of {path.name} failed ({proc.returncode}): {out}{err}"[-3000:])
    m = re.search(r"import (imp_[0-9a-f]+)", out)
    state = settings.run_dir / "imports" / f"{m.group(1) if m else '-'}.json"
    sent = json.loads(state.read_text())["events_per_s"] if state.exists() else None
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": round(rss, 1), "stdout": out,
            "send_ev_s": sent}  # fmt: skip


def produce(bootstrap: str, topic: str, events: list[dict]) -> float:
    """Seconds for the front door's producer path (bench/events.py: requests
    of 100 validated, encoded, grouped by partition and sent) to get
    ``events`` acknowledged, with the import's age bound (none)."""
    from api.ingest.validate import Bounds
    from bench.events import Requests, requests_of

    out = Requests(bootstrap, topic, "t_base", 20)
    out.bounds = Bounds(300, math.inf)
    received = datetime.now(UTC)
    t = time.perf_counter()
    for request in requests_of(events):
        out.send(request, received)
    if out.flush(120):
        raise RuntimeError("baseline not acknowledged by Kafka")
    return time.perf_counter() - t


def create_tenant(settings: Settings, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "ops.cli", "tenant", "create", name],
                         cwd=PROJECT_ROOT, env=child_env(settings), capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    m = re.search(rf"tenant {name} created: (\S+)", out.stderr)
    if m is None:
        raise RuntimeError(f"tenant create {name}: {out.stderr[-500:]}")
    return m.group(1)


def run(scale: Scale, ctx: Context) -> Result:
    from sinks.sink import Sink
    from sinks.store import open_store

    n = scale.import_events
    settings = fresh_settings(ctx, "bimp")
    events = history(n)
    t = time.perf_counter()
    paths = write_files(events, settings.run_dir / "files")
    write_s = time.perf_counter() - t
    warm = settings.run_dir / "warm" / "warm.ndjson"
    warm.parent.mkdir()
    warm.write_text("".join(json.dumps({**e, "client_event_id": f"w{i}"}) + "\n"
                            for i, e in enumerate(events[:100])))  # fmt: skip
    tid = create_tenant(settings, "acme")
    warm_tid = create_tenant(settings, "warmup")

    # the baseline: the raw producer writing the same events (another prefix)
    producer_s = produce(ctx.bootstrap, fresh_settings(ctx, "bimpbase").topic("events.raw"), events)

    # the sink's own data path: the CLI's store (tenants, audit) is the run dir's
    store = open_store(None, settings.run_dir / "sink-clickhouse")
    sink = Sink(settings, store, ctx.bootstrap)
    worker = start_worker(settings)
    sink.start()
    day_sql = (
        "SELECT toString(day) AS d, sum(events) AS n FROM learner_daily FINAL"
        " WHERE tenant_id = {t:String} GROUP BY d"
    )

    def counted(tenant: str) -> int:
        q = "SELECT sum(events) AS n FROM learner_daily FINAL WHERE tenant_id = {t:String}"
        return int(store.query(q, {"t": tenant})[0]["n"] or 0)

    def until(tenant: str, want: int, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if counted(tenant) >= want:
                return True
            time.sleep(0.2)
        return False

    truth = by_day(events)
    timeout = scale.stream_timeout_s
    try:
        small = run_import(settings, warm, "warmup", timeout)
        if not until(warm_tid, 100, timeout):
            raise RuntimeError("warm-up import never queryable: is the worker running?")
        t0 = time.perf_counter()
        first = run_import(settings, paths["ndjson.gz"], "acme", timeout)
        complete = until(tid, n, timeout)
        queryable_s = time.perf_counter() - t0 if complete else None
        exact = {"ndjson.gz": complete and by_day_rows(store, day_sql, tid) == truth}
        again = run_import(settings, paths["ndjson.gz"], "acme", timeout)
        exact["ndjson.gz again"] = by_day_rows(store, day_sql, tid) == truth
        others = {}
        for fmt in ("csv", "parquet"):
            others[fmt] = run_import(settings, paths[fmt], "acme", timeout)
            time.sleep(2)  # the sink's last blocks
            exact[fmt] = by_day_rows(store, day_sql, tid) == truth
        total = counted(tid)
        jobs, deadline = 0, time.perf_counter() + 60
        while jobs < 3 and time.perf_counter() < deadline:  # one report per import (3 files)
            jobs = int(store.query(
                "SELECT count() AS n FROM events FINAL WHERE tenant_id = {t:String}"
                " AND event_name = 'data_import_completed'", {"t": tid})[0]["n"])  # fmt: skip
            time.sleep(0.5)
    finally:
        stop(worker)
        sink.stop()
        store.close()

    def rate(sec: float | None) -> float | None:
        return round(n / sec, 1) if sec else None

    nd = first["seconds"]
    rows = [
        Row("events/s file → queryable (NDJSON.gz)", rate(queryable_s), rate(producer_s), "ev/s",
            "higher", "raw producer: the same events into Kafka only (validate, encode, send)"),
        Row("events/s read, validated, sent (NDJSON.gz)", first["send_ev_s"], rate(producer_s),
            "ev/s", "higher", "raw producer: the same events into Kafka only"),
        Row("events/s read, validated, sent (CSV)", others["csv"]["send_ev_s"],
            first["send_ev_s"], "ev/s", "higher", "the NDJSON.gz import's"),
        Row("events/s read, validated, sent (Parquet)", others["parquet"]["send_ev_s"],
            first["send_ev_s"], "ev/s", "higher", "the NDJSON.gz import's"),
        Row("peak RSS of the import command (NDJSON.gz)", first["peak_rss_mb"],
            small["peak_rss_mb"], "MB", "lower", "the same command importing 100 events"),
        Row("events added by the same file again, and by CSV and Parquet", total - n, None, "",
            "lower", "(goal 0)"),
    ]  # fmt: skip
    return Result(
        "import",
        rows=rows,
        details={
            "events": n,
            "learners": max(50, n // 200),
            "days": len(truth),
            "file_bytes": {k: p.stat().st_size for k, p in paths.items()},
            "write_files_s": round(write_s, 1),
            "producer_s": round(producer_s, 2),
            "import_s": {
                "ndjson.gz": round(nd, 2),
                "again": round(again["seconds"], 2),
                **{k: round(v["seconds"], 2) for k, v in others.items()},
            },  # fmt: skip
            "queryable_s": queryable_s and round(queryable_s, 2),
            "send_ev_s": {
                "ndjson.gz": first["send_ev_s"],
                **{k: v["send_ev_s"] for k, v in others.items()},
            },  # fmt: skip
            "peak_rss_mb": {
                "warm-up (100 events)": small["peak_rss_mb"],
                "ndjson.gz": first["peak_rss_mb"],
                **{k: v["peak_rss_mb"] for k, v in others.items()},
            },  # fmt: skip
            "second_import_adds_nothing": "adds nothing" in again["stdout"],
            "totals_exact_per_day": exact,
            "counted": total,
            "data_import_completed_events": int(jobs),
            "complete": bool(complete and all(exact.values()) and total == n and jobs == 3),
        },
    )


def by_day_rows(store, sql: str, tenant: str) -> dict[str, int]:
    return {r["d"]: int(r["n"]) for r in store.query(sql, {"t": tenant}) if int(r["n"])}
