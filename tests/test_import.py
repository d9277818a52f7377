"""Historical import (api/imports/, `skillstream import`): reading the three
formats, validation as the front door does with the import's own age bound,
rejects with row numbers, dry runs, resume after an interruption. The
stream's side (exactness against ground truth, a second import adding
nothing) is tests/test_import_stream.py."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from api.imports.readers import open_rows
from api.imports.run import Importer, Target, recompute_span
from api.imports.sources import SourceError, resolve
from api.imports.state import ImportBusy, ImportState, StateStore, import_id
from api.ingest.validate import Bounds, validate_event
from core.settings import Settings
from schemas.examples import example_event

LONG_AGO = datetime.now(UTC) - timedelta(days=400)
SALT = "s" * 32


def events(n: int, start: datetime = LONG_AGO) -> list[dict]:
    return [
        example_event("lesson_completed", client_event_id=f"e{i}", user_id=f"u{i % 7}",
                      at=start + timedelta(hours=i), program_id="p1")
        for i in range(n)
    ]  # fmt: skip


def write_ndjson(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


class FakeOut:
    """Kafka's side of an import: what it acknowledged; fails on request."""

    partitions = 3
    bootstrap = "-"

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[int] = []  # events per acknowledged chunk
        self.fail_at = fail_at

    def send(self, groups, headers, ts_ms) -> None:
        if self.fail_at is not None and len(self.sent) == self.fail_at:
            raise KeyboardInterrupt
        self.sent.append(sum(len(g.indexes) for g in groups))
        assert dict(headers)["tenant_id"] == b"t1"


def importer(tmp_path: Path, source: str, *, out=None, chunk: int = 5000, dry: bool = False,
             mapping=None) -> Importer:  # fmt: skip
    settings = Settings(SKILLSTREAM_RUN_DIR=tmp_path / "run", IMPORT_CHUNK_EVENTS=chunk)
    files = resolve(source)
    states = StateStore(settings.run_dir / "imports")
    iid = import_id("t1", [f.identity for f in files])
    st = states.load(iid) or ImportState(iid, "t1", "acme", source, dry_run=dry)
    return Importer(settings, Target("t1", "acme", SALT), files, st, states, out=out,
                    mapping=mapping)  # fmt: skip


def test_ndjson_gzip_rows_rejects_and_the_import_age_bound(tmp_path: Path) -> None:
    good = events(5)
    bad = {**good[0], "client_event_id": "bad", "properties": {"lesson_id": 3}}
    lines = [json.dumps(e) for e in good] + ["{not json", "", json.dumps(bad),
                                             json.dumps(good[1])]  # fmt: skip
    path = write_ndjson(tmp_path / "h.ndjson.gz", lines)
    # the live bound refuses these events; the import takes any age
    live = Bounds(max_future_s=300, max_age_s=7 * 86400)
    assert validate_event(good[0], tenant_id="t1", pii_salt=SALT,
                          received_at=datetime.now(UTC), bounds=live)[1]  # fmt: skip
    out = FakeOut()
    imp = importer(tmp_path, str(path), out=out)
    st = imp.send_all()
    assert (st.read, st.accepted, st.duplicates, st.rejected) == (8, 5, 1, 2)
    assert out.sent == [5]
    rejects = [orjson.loads(x) for x in Path(st.rejects_file).read_bytes().splitlines()]
    assert [(r["row"], r["errors"][0]["field"]) for r in rejects] == [
        (6, ""),
        (8, "properties.lesson_id"),
    ]
    assert rejects[0]["errors"][0]["reason"].startswith("not JSON")
    assert st.rejected_by_reason == {
        rejects[0]["errors"][0]["reason"]: 1,
        "properties.lesson_id: must be a string": 1,
    }
    assert st.first_day == LONG_AGO.date().isoformat()


def test_an_import_age_bound_when_set(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "h.ndjson", [json.dumps(e) for e in events(2)])
    imp = importer(tmp_path, str(path), out=FakeOut())
    imp.bounds = Bounds(max_future_s=300, max_age_s=365 * 86400)  # IMPORT_MAX_AGE_S
    st = imp.send_all()
    assert st.rejected == 2 and st.accepted == 0


def test_csv_with_a_mapping_and_parquet_read_as_the_batch_shape(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    evs = events(3)
    header = "name,id,ts,anon,user,persona,page,optout,program,lesson,minutes"
    rows = [
        ",".join([e["event_name"], e["client_event_id"], e["event_timestamp"], e["anonymous_id"],
                  e["user_id"], e["persona"], e["context_page"], "false", "p1", "les_1", "18"])
        for e in evs
    ]  # fmt: skip
    csv_path = tmp_path / "h.csv"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    mapping = {"name": "event_name", "id": "client_event_id", "ts": "event_timestamp",
               "anon": "anonymous_id", "user": "user_id", "page": "context_page",
               "optout": "opt_out_status", "program": "program_id",
               "lesson": "properties.lesson_id",
               "minutes": "properties.duration_minutes"}  # fmt: skip
    rows_iter, _ = open_rows(csv_path, "csv", mapping)
    got = list(rows_iter)
    assert [r.number for r in got] == [2, 3, 4]
    assert got[0].event["properties"] == {"lesson_id": "les_1", "duration_minutes": 18}
    assert got[0].event["opt_out_status"] is False
    st = importer(tmp_path, str(csv_path), out=FakeOut(), mapping=mapping).send_all()
    assert (st.accepted, st.rejected) == (3, 0), st.rejected_by_reason

    table = pa.Table.from_pylist(
        [{**{k: v for k, v in e.items() if k != "context_device"},
          "event_timestamp": datetime.fromisoformat(e["event_timestamp"])} for e in evs]
    )  # fmt: skip
    pq.write_table(table, tmp_path / "h.parquet")
    st = importer(tmp_path, str(tmp_path / "h.parquet"), out=FakeOut()).send_all()
    assert (st.accepted, st.rejected) == (3, 0), st.rejected_by_reason


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "h.jsonl", [json.dumps(e) for e in events(4)])
    imp = importer(tmp_path, str(path), dry=True)
    st = imp.send_all()
    imp.finish()
    assert (st.accepted, st.status) == (4, "done")
    assert not (tmp_path / "run" / "imports" / f"{st.import_id}.json").exists()


def test_interrupted_import_resumes_after_its_last_acknowledged_chunk(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "h.ndjson", [json.dumps(e) for e in events(25)])
    first = FakeOut(fail_at=2)
    imp = importer(tmp_path, str(path), out=first, chunk=10)
    lock = imp.states.lock(imp.state.import_id)
    with pytest.raises(ImportBusy):
        imp.states.lock(imp.state.import_id)
    with pytest.raises(KeyboardInterrupt):
        imp.send_all()
    lock.close()
    assert first.sent == [10, 10]
    again = FakeOut()
    imp = importer(tmp_path, str(path), out=again, chunk=10)
    st = imp.send_all()
    assert again.sent == [5] and st.already_imported == 20
    assert (st.read, st.accepted, st.runs) == (25, 25, 2)


def test_sources_directory_glob_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "d" / "x").mkdir(parents=True)
    write_ndjson(tmp_path / "d" / "a.ndjson", ["{}"])
    write_ndjson(tmp_path / "d" / "x" / "b.ndjson.gz", ["{}"])
    (tmp_path / "d" / "notes.txt").write_text("hi")
    assert [Path(f.name).name for f in resolve(str(tmp_path / "d"))] == ["a.ndjson", "b.ndjson.gz"]
    assert [f.fmt for f in resolve(str(tmp_path / "d" / "**" / "*.gz"))] == ["ndjson"]
    with pytest.raises(SourceError):
        resolve(str(tmp_path / "d" / "notes.txt"))
    with pytest.raises(SourceError):
        resolve(str(tmp_path / "nothing*"))


def test_recompute_span_reaches_the_scores_an_import_changed() -> None:
    today = datetime(2026, 6, 1).date()
    assert recompute_span("2025-01-01", "2025-03-01", today) == (
        datetime(2025, 1, 1).date(),
        datetime(2025, 3, 22).date(),
    )
    assert recompute_span("2026-06-01", "2026-06-01", today) is None
    assert recompute_span(None, None, today) is None


class AppliedOut(FakeOut):
    """Kafka and a worker that has applied everything: keeps what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[bytes] = []

    def send(self, groups, headers, ts_ms) -> None:
        super().send(groups, headers, ts_ms)
        self.values += [g.value for g in groups]

    def end_offsets(self) -> dict[int, int]:
        return {0: 0}

    def behind(self, group, ends) -> int:
        return 0


def test_a_finished_import_reports_its_job_as_data_import_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data freshness SLA's telemetry: the import's own completion event,
    validated as any other and sent after its events, one id per import."""
    import streams.ticks

    monkeypatch.setattr(streams.ticks, "request_recompute", lambda *a: None)
    good = events(6)
    path = write_ndjson(tmp_path / "h.ndjson",
                        [json.dumps(e) for e in good] + ["{not json"])  # fmt: skip
    out = AppliedOut()
    imp = importer(tmp_path, str(path), out=out)
    imp.send_all()
    st = imp.finish(wait_s=5, poll_s=0.01)
    assert st.status == "done" and out.sent == [6, 1]
    (done,) = imp.codec.decode_many(out.values[-1])
    assert done["event_name"] == "data_import_completed" and done["tenant_id"] == "t1"
    assert done["client_event_id"] == f"data-import:{st.import_id}"
    assert done["schema_version"] >= 5 and done["user_id"] is None
    record, props = done["properties"]  # (Avro record name, fields)
    assert record.endswith("DataImportCompleted")
    assert (props["job_id"], props["dataset"]) == (st.import_id, "history")
    assert (props["events_imported"], props["rows_rejected"]) == (6, 1)
    started = datetime.fromtimestamp(st.started_at, UTC)
    assert abs((props["released_at"] - started).total_seconds()) < 0.001
    assert props["started_at"] == props["released_at"]
    finished = datetime.fromtimestamp(st.finished_at, UTC)  # type: ignore[arg-type]
    assert abs((props["completed_at"] - finished).total_seconds()) < 0.001
    assert done["event_timestamp"] == props["completed_at"]
