"""The embedded ClickHouse store: migrations, inserts, dedup tokens, queries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks.migrations import migrate, migration_files, statements
from sinks.store import EmbeddedStore, StoreError, insert_sql

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_applied_once_and_idempotent(store):
    versions = [v for v, _, _ in migration_files()]
    applied = {r["version"] for r in store.query("SELECT version FROM schema_migrations FINAL")}
    assert set(versions) <= applied
    assert migrate(store) == []  # second run applies nothing
    # the newest migration's statements again: a crash before its record
    for stmt in statements(migration_files()[-1][2].read_text()):
        store.command(stmt)


@pytest.mark.stack
def test_each_migration_survives_a_crash_before_its_record(tmp_path):
    """Every migration's statements run twice in a row on a store at that
    version (IF NOT EXISTS, IF EXISTS, back-fills that merge into the same
    states); a later migration may change what an earlier one made, so each
    is re-run where it stands, not against the newest schema."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.migration_rerun", str(tmp_path / "ch")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout.splitlines()[-1]) == [v for v, _, _ in migration_files()]


def test_insert_with_dedup_token_is_applied_once(store, unique):
    table = f"dedup_{unique}"
    store.command(
        f"CREATE TABLE {table} (k String, v UInt32) ENGINE = MergeTree ORDER BY k"
        " SETTINGS non_replicated_deduplication_window = 1000"
    )
    rows = [{"k": f"a{i}", "v": i} for i in range(100)]
    store.insert(table, rows, dedup_token="events.raw:0:0-99")
    store.insert(table, rows, dedup_token="events.raw:0:0-99")  # replay after a crash
    store.insert(table, rows[:10], dedup_token="events.raw:0:100-109")  # a new batch
    out = store.query(f"SELECT count() AS n, sum(v) AS s FROM {table}")
    assert out == [{"n": 110, "s": sum(range(100)) + sum(range(10))}]


def test_parameterised_query_never_interpolates(store, unique):
    hostile = "x' OR 1=1 --"
    out = store.query("SELECT {s:String} AS s, {n:UInt32} + 1 AS n", {"s": hostile, "n": 41})
    assert out == [{"s": hostile, "n": 42}]


def test_tenants_roundtrip(store, unique):
    from cryptography.fernet import Fernet

    from api.sealing import Sealer
    from api.tenants import TenantError, TenantRegistry

    reg = TenantRegistry(store, Sealer(Fernet.generate_key().decode(), "PII salts"))
    tenant, key = reg.create(f"acme-{unique}")
    assert key.startswith("ssk_")
    assert reg.by_write_key(key) == tenant
    assert reg.by_name(f"acme-{unique}") == tenant
    assert reg.by_write_key(key + "x") is None
    with pytest.raises(TenantError):
        reg.create(f"acme-{unique}")
    # only the hash of the key is stored, and the PII salt only sealed
    raw = store.query("SELECT * FROM tenants WHERE tenant_id = {t:String}", {"t": tenant.tenant_id})
    assert key not in repr(raw)
    assert raw[0]["pii_salt"].startswith("fernet:") and tenant.pii_salt not in repr(raw)
    assert reg.by_name(f"acme-{unique}").pii_salt == tenant.pii_salt


def test_bad_sql_is_a_store_error(store):
    with pytest.raises(StoreError):
        store.query("SELECT * FROM no_such_table_anywhere")


def test_insert_sql_rejects_injection():
    with pytest.raises(ValueError):
        insert_sql("t; DROP TABLE x", None)
    with pytest.raises(ValueError):
        insert_sql("t", "tok'en")


def test_second_data_path_in_same_process_is_refused(store, tmp_path):
    with pytest.raises(StoreError):
        EmbeddedStore(tmp_path / "other")


def test_array_parameters_are_quoted_safely(store):
    hostile = ["a'b", "c\\d", "x') OR 1=1 --"]
    out = store.query(
        "SELECT {xs:Array(String)} AS xs, length({xs:Array(String)}) AS n", {"xs": hostile}
    )
    assert out == [{"xs": hostile, "n": 3}]


@given(st.text(max_size=40), st.lists(st.text(max_size=12), max_size=4))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_string_parameter_round_trips(store, text, texts):
    """Tabs, newlines, backslashes, quotes, NULs: the value comes back as sent
    (the API fuzz run found a tab in a user id answered with a 500)."""
    out = store.query("SELECT {v:String} AS v, {xs:Array(String)} AS xs", {"v": text, "xs": texts})
    assert out == [{"v": text, "xs": texts}]


def test_parallel_sessions_keep_each_querys_parameters(store):
    """The embedded store's sessions run queries in parallel: a query never
    sees another thread's parameter values (a tenant id is one), and the
    sessions do overlap."""
    from concurrent.futures import ThreadPoolExecutor

    sql = (
        "SELECT {t:String} AS t, (SELECT count() FROM tenants WHERE tenant_id = {t:String})"
        " AS n, {xs:Array(String)} AS xs"
    )

    def ask(i: int) -> bool:
        t = f"tenant-{i % 7}"
        return store.query(sql, {"t": t, "xs": [t, str(i)]}) == [
            {"t": t, "n": 0, "xs": [t, str(i)]}
        ]

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(ask, range(600)))


def test_reads_overlap_and_a_write_waits_for_them(store):
    """An export's open stream does not hold up another thread's query; a
    write waits until no read runs (an INSERT is not atomic with its views)
    and holds back reads that come after it; the stream's own thread may
    read on past the waiting write, and its write is refused, not a hang."""
    import threading

    if not isinstance(store, EmbeddedStore):
        pytest.skip("the embedded store's own locking")
    chunks = store.stream("SELECT number FROM numbers(10)", fmt="CSV")
    next(chunks)  # the stream now holds a session and a read
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (store.query("SELECT 1 AS x"), done.set())).start()
        assert done.wait(10), "a query waited for an open stream"
        wrote, later = threading.Event(), threading.Event()
        threading.Thread(target=lambda: (store.command("SELECT 1"), wrote.set())).start()
        assert not wrote.wait(1), "a write ran beside an open read"
        threading.Thread(target=lambda: (store.query("SELECT 1 AS x"), later.set())).start()
        assert not later.wait(0.5), "a read went before a waiting write"
        assert store.query("SELECT 2 AS x") == [{"x": 2}]  # this thread reads again
        with pytest.raises(StoreError):
            store.command("SELECT 1")
    finally:
        chunks.close()
    assert wrote.wait(10) and later.wait(10)
