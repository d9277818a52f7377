"""The demo generator's history: the same events with the same ids in every
run (a restarted demo resumes, it never counts twice), and the dashboard's
"loading demo history: N of M days" from what ClickHouse holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from api.demo_history import progress
from ops.demo import BACKFILL_DAYS, LEGACY_MARKER, History, Population, planned_between
from tests.support.reports_data import _event

NOW = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)


def _ids(pop: Population, since: datetime, until: datetime) -> list[str]:
    return [ev["client_event_id"] for _, ev in planned_between(pop, since, until)]


def _pop(anchor: datetime) -> Population:
    return Population.build(
        learners_per_tenant=40, start=anchor - timedelta(days=BACKFILL_DAYS + 14)
    )


def test_history_ids_are_the_same_in_every_run_and_split_anywhere():
    start = NOW - timedelta(days=10)
    whole = _ids(_pop(NOW), start, NOW)
    assert len(whole) == len(set(whole)) > 500
    cut = start + timedelta(days=3, hours=7)  # a run stopped here, the next resumed
    assert _ids(_pop(NOW), start, cut) + _ids(_pop(NOW), cut, NOW) == whole


def test_history_state_survives_a_restart(tmp_path):
    fresh = History.load(tmp_path, NOW, BACKFILL_DAYS)
    assert fresh.anchor == NOW and fresh.sent_until == NOW - timedelta(days=BACKFILL_DAYS)
    fresh.sent_until = NOW - timedelta(days=20)
    fresh.tenants = ["demo-a"]
    fresh.save(tmp_path)
    later = History.load(tmp_path, NOW + timedelta(hours=5), BACKFILL_DAYS)
    assert (later.anchor, later.sent_until, later.tenants) == (NOW, fresh.sent_until, ["demo-a"])


def test_run_dir_of_an_older_demo_goes_on_from_now(tmp_path):
    (tmp_path / LEGACY_MARKER).write_text((NOW - timedelta(days=3)).isoformat())
    hist = History.load(tmp_path, NOW, BACKFILL_DAYS)
    assert hist.anchor == NOW - timedelta(days=3) and hist.sent_until == NOW


def test_loading_counts_days_queryable_for_every_demo_tenant(tmp_path, store):
    names = [f"demo-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    ids = {n: f"t_{uuid.uuid4().hex[:12]}" for n in names}
    start = NOW - timedelta(days=10)
    hist = History(NOW, start, names, loading_from=start, loading_until=NOW)
    hist.save(tmp_path)
    fresh: dict[str, datetime] = {}
    state = progress(store, tmp_path, ids, fresh.get)
    assert (state["loading"], state["loaded"], state["days"]) == (True, 0, 10)

    def sunk(name: str, at: datetime) -> None:
        row = _event(ids[name], uuid.uuid4().hex, "u1", "lesson_completed", at, "p", {})
        store.insert("events", [row])
        fresh[ids[name]] = datetime.now(UTC)

    sunk(names[0], start + timedelta(days=6, hours=1))
    sunk(names[1], start + timedelta(days=4, hours=1))
    assert progress(store, tmp_path, ids, fresh.get)["loaded"] == 4  # the slower tenant's
    sunk(names[1], NOW - timedelta(minutes=1))
    assert progress(store, tmp_path, ids, fresh.get)["loaded"] == 6
    # sent: loaded once every demo tenant's data is as fresh as the end of sending
    hist.finished_at = datetime.now(UTC)
    hist.save(tmp_path)
    assert progress(store, tmp_path, ids, fresh.get)["loading"]
    sunk(names[0], NOW - timedelta(minutes=1))
    sunk(names[1], NOW - timedelta(minutes=1))
    assert progress(store, tmp_path, ids, fresh.get) == {
        "loading": False, "loaded": 10, "days": 10, "tenants": names,
        "finished_at": hist.finished_at.isoformat(),
    }  # fmt: skip


def test_nothing_loading_without_a_span_and_starting_without_a_demo(tmp_path, store):
    assert progress(store, tmp_path, {}, {}.get)["loading"]  # the demo has not written yet
    History(NOW, NOW, ["demo-a"]).save(tmp_path)
    assert not progress(store, tmp_path, {"demo-a": "t_x"}, {}.get)["loading"]
