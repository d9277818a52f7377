"""A year of history for 1,000 learners imported while the same learners
send live events (some of them also in the file): the aggregates and the
daily scores equal ground truth computed here from the generated events,
and importing the file again (or a copy of it) adds nothing."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from core.settings import PROJECT_ROOT
from schemas.examples import example_event
from tests.support import scenario
from tests.support.stream_check import diff, observed
from tests.test_stream import post_all, start_worker, stop

pytestmark = pytest.mark.stack

ACTIONS = ["session_started", "lesson_completed", "assignment_submitted",
           "live_session_attended", "program_phase_advanced", "career_match_viewed"]  # fmt: skip


def history(name: str, learners: int, per_learner: int, rng: random.Random):
    """(imported events, live events): a year before today for each learner,
    and a few live ones in the last days, a tenth of them also in the file."""
    now = datetime.now(UTC).replace(microsecond=0)
    imported, live = [], []
    for i in range(learners):
        user = f"{name}-u{i}"
        for k in range(per_learner):
            at = now - timedelta(days=rng.randint(2, 365), minutes=rng.randint(0, 1440))
            ev = example_event(rng.choice(ACTIONS), client_event_id=f"h{i}-{k}", at=at,
                               user_id=user, program_id=f"prog-{i % 3}")  # fmt: skip
            imported.append(ev)
        if i % 2 == 0:
            at = now - timedelta(hours=rng.randint(1, 100))
            live.append(example_event(rng.choice(ACTIONS), client_event_id=f"l{i}", at=at,
                                      user_id=user, program_id=f"prog-{i % 3}"))  # fmt: skip
    both = [e for e in imported if e["event_timestamp"] >= (now - timedelta(days=6)).isoformat()]
    live.extend(both)  # sent live too: must count once
    return imported, live


def cli_env(settings, kafka_bootstrap) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "TOPIC_PREFIX": settings.topic_prefix,
            "TOPIC_PARTITIONS": str(settings.topic_partitions),
            "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}  # fmt: skip


def run_import(env, path, tenant) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "import", str(path), "--tenant", tenant,
         "--no-progress", "--wait-s", "120"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def token(api, tid: str, name: str, role: str) -> dict[str, str]:
    from api.security import issue_token

    t = issue_token(api.ctx.secrets.token_secret, tenant_id=tid, tenant_name=name, role=role,
                    user_id="admin-1", ttl_s=600)  # fmt: skip
    return {"Authorization": f"Bearer {t}"}


def expected_daily_scores(daily: dict, day: date) -> dict:
    """Through the documented formula, for the learners active in the 21
    days up to ``day`` (the ones the nightly recompute scores)."""
    from streams.score import compute

    per: dict = {}
    for (tenant, user, d), comps in daily.items():
        per.setdefault((tenant, user), {})[date.fromisoformat(d).toordinal()] = comps
    out = {}
    for key, days in per.items():
        if any(day.toordinal() - 21 <= d <= day.toordinal() for d in days):
            s = compute(days, day.toordinal())
            out[key] = (s.score, int(s.at_risk))
    return out


def test_a_year_imported_beside_live_events_is_exact_and_counted_once(
    live_api_with_sink, settings, kafka_bootstrap, unique, tmp_path
):
    api = live_api_with_sink
    name = f"imp{unique}"
    tid, key = api.new_tenant(name)
    settings.api_file.parent.mkdir(parents=True, exist_ok=True)
    settings.api_file.write_text(json.dumps({"url": api.url, "pid": os.getpid()}))
    imported, live = history(name, learners=1000, per_learner=5, rng=random.Random(30))
    path = tmp_path / "history.ndjson.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in imported).encode()))
    truth = list({e["client_event_id"]: e for e in imported + live}.values())
    want = scenario.expected(truth, {name: tid})
    # the import reports its job (the data freshness SLA's telemetry), once
    want["totals"][(tid, "data_import_completed")] = 1
    env = cli_env(settings, kafka_bootstrap)
    worker = start_worker(settings, kafka_bootstrap)
    try:
        half = len(live) // 2
        post_all(api, {name: key}, [live[i : i + 200] for i in range(0, half, 200)])
        t0 = time.monotonic()
        out = run_import(env, path, name)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"accepted   {len(imported):>10,}" in out.stdout, out.stdout
        print(f"import of {len(imported)} events applied in {time.monotonic() - t0:.1f}s")
        post_all(api, {name: key}, [live[i : i + 200] for i in range(half, len(live), 200)])
        deadline, problems = time.monotonic() + 120, ["not checked"]
        while problems and time.monotonic() < deadline:
            problems = diff(want, observed(api.ctx.store.query, [tid]))
            time.sleep(1)
        assert not problems, "\n".join(problems[:20])

        # the daily scores of imported days, as if the nightly recompute had run then
        today = datetime.now(UTC).date()
        days = [today - timedelta(days=n) for n in (300, 120, 8)]
        q = (
            "SELECT user_id, toString(day) AS d, score, at_risk FROM learner_scores FINAL"
            " WHERE tenant_id = {t:String} AND kind = 'daily' AND day IN {d:Array(Date)}"
        )
        want_scores = {d: expected_daily_scores(want["daily"], d) for d in days}
        got: dict = {}
        deadline = time.monotonic() + 120
        while got != want_scores and time.monotonic() < deadline:
            time.sleep(1)
            got = {d: {} for d in days}
            for r in api.ctx.store.query(q, {"t": tid, "d": [d.isoformat() for d in days]}):
                got[date.fromisoformat(r["d"])][(tid, r["user_id"])] = (
                    int(r["score"]), int(r["at_risk"]))  # fmt: skip
        assert got == want_scores

        # the same file again adds nothing; uploaded over HTTP (another file, the
        # same ids) neither, and the import answers with the same counts
        again = run_import(env, path, name)
        assert again.returncode == 0 and "adds nothing" in again.stdout, again.stdout
        admin = token(api, tid, name, "company_admin")
        manager = token(api, tid, name, "manager")
        denied = httpx.post(f"{api.url}/v1/imports/upload?filename=h.ndjson.gz",
                            content=b"{}", headers=manager)  # fmt: skip
        assert denied.status_code == 403
        r = httpx.post(f"{api.url}/v1/imports/upload?filename=h.ndjson.gz",
                       content=path.read_bytes(), headers=admin, timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        deadline, st = time.monotonic() + 60, {}
        while st.get("status") != "done" and time.monotonic() < deadline:
            time.sleep(0.5)
            st = httpx.get(f"{api.url}{r.json()['status_url']}", headers=admin).json()
        assert (st["status"], st["read"], st["accepted"]) == ("done", len(imported), len(imported))
        want["totals"][(tid, "data_import_completed")] = 2  # another import: its own report
        listed = httpx.get(f"{api.url}/v1/imports", headers=admin).json()
        assert r.json()["import_id"] in [i["import_id"] for i in listed]
        # its completion event follows everything it sent (applied before it is
        # sent): once counted, the upload's events are in, and added nothing
        deadline, problems = time.monotonic() + 90, ["not checked"]
        while problems and time.monotonic() < deadline:
            time.sleep(1)
            problems = diff(want, observed(api.ctx.store.query, [tid]))
        assert not problems, "\n".join(problems[:20])
        jobs = api.ctx.store.query(
            "SELECT JSONExtractString(properties, 'job_id') AS job,"
            " JSONExtractString(properties, 'dataset') AS dataset,"
            " JSONExtractInt(properties, 'events_imported') AS n FROM events FINAL"
            " WHERE tenant_id = {t:String} AND event_name = 'data_import_completed'",
            {"t": tid},
        )
        assert sorted((j["dataset"], j["n"]) for j in jobs) == [("history", len(imported))] * 2
        assert r.json()["import_id"] in {j["job"] for j in jobs}
    finally:
        stop(worker)
