"""One import, start to end, the same for `skillstream import` and
``POST /v1/imports``:

1. each file's rows (readers.py) past the import's resume point, a chunk at
   a time (IMPORT_CHUNK_EVENTS);
2. each event validated exactly as the front door does (api/ingest/validate.py:
   the dictionary, the Avro schema, PII hashed with the tenant's secret, the
   tenant from the command, never from the file), but with the import's own
   age bound (IMPORT_MAX_AGE_S, default none) instead of the live one; a
   rejected row goes to the rejects file with its file, row number and
   reasons; an id repeated within the import counts once;
3. the accepted events as batch records (api/ingest/batches.py: the same
   partition of ``tenant:learner``) on ``events.import``, which the worker
   applies after live work (streams/priority.py); the resume point moves only
   once Kafka acknowledged the chunk, so an interrupted import sent again
   from there counts each event once (the worker dedupes by client event id,
   as for live events, and an event also sent live counts once too);
4. once every file is sent: wait until the worker has applied (committed)
   everything on ``events.import``, then recompute the daily scores of the
   days the import touched and the 21 after them (a score looks back
   WINDOW_DAYS + INACTIVE_DAYS), as the nightly recompute would have;
5. then report the job done: one ``data_import_completed`` event (dataset
   ``history``, released when the import was first requested, started and
   completed times, events imported), validated and sent as any other, under
   the importing tenant: the data-import telemetry the platform's data
   freshness KPI reads (api/reports/kpis.py). Its client event id is the
   import's, so running a finished import again reports it once.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO

import orjson

from api.imports.readers import Mapping, Row, open_rows
from api.imports.sources import S3Reader, SourceFile, local_path
from api.imports.state import FileProgress, ImportState, StateStore
from api.ingest.batches import Group, encode_groups
from api.ingest.validate import Bounds, validate_event
from core.keys import learner_key_bytes
from core.settings import Settings
from schemas.codec import codec_for

log = logging.getLogger("skillstream.import")
SCORE_REACH_DAYS = 21  # a daily score reads the 14-day window and 7 days of inactivity
COMPLETED_EVENT = "data_import_completed"
DATASET = "history"  # what this importer loads: a tenant's event history


class ImportAborted(RuntimeError):
    """Kafka did not take a chunk: nothing after the last acknowledged one
    counts as sent; running the import again resumes there."""


@dataclass(frozen=True)
class Target:
    tenant_id: str
    name: str
    pii_salt: str


class KafkaOut:
    """The import's own idempotent producer (acks=all) to ``events.import``."""

    def __init__(self, bootstrap: str, topic: str, ack_timeout_s: float = 60) -> None:
        from confluent_kafka import Producer

        self.topic, self.ack_timeout_s, self.bootstrap = topic, ack_timeout_s, bootstrap
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "message.timeout.ms": int(ack_timeout_s * 1000),
                "log_level": 3,
            }
        )
        md = self.producer.list_topics(topic, 10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            raise ImportAborted(f"topic {topic} not found: is the stack's Kafka running?")
        self.partitions = len(md.partitions)

    def send(self, groups: list[Group], headers: list[tuple[str, bytes]], ts_ms: int) -> None:
        errors: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        for g in groups:
            while True:
                try:
                    self.producer.produce(self.topic, g.value, None, partition=g.partition,
                                          headers=headers, timestamp=ts_ms,
                                          on_delivery=delivered)  # fmt: skip
                    break
                except BufferError:
                    self.producer.poll(0.1)
        left = self.producer.flush(self.ack_timeout_s)
        if errors or left:
            raise ImportAborted(errors[0] if errors else f"{left} record(s) not acknowledged")

    def end_offsets(self) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "-", "log_level": 0})
        try:
            return {
                p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                for p in range(self.partitions)
            }
        finally:
            c.close()

    def behind(self, group: str, ends: dict[int, int]) -> int:
        """Records of ``ends`` the worker group has not committed yet."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "log_level": 0})
        try:
            tps = [TopicPartition(self.topic, p) for p in ends]
            done = {tp.partition: max(0, tp.offset) for tp in c.committed(tps, timeout=10)}
        finally:
            c.close()
        return sum(max(0, end - done.get(p, 0)) for p, end in ends.items())


Progress = Callable[[ImportState], None]


def _reason(errors: list[dict]) -> str:
    first = errors[0]
    return f"{first['field']}: {first['reason']}" if first.get("field") else first["reason"]


class Importer:
    def __init__(
        self,
        settings: Settings,
        target: Target,
        files: list[SourceFile],
        state: ImportState,
        states: StateStore,
        *,
        out: KafkaOut | None,  # None: a dry run
        mapping: Mapping | None = None,
        s3: S3Reader | None = None,
        rejects: Path | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.settings, self.target, self.files = settings, target, files
        self.state, self.states, self.out = state, states, out
        self.mapping, self.s3 = mapping or {}, s3
        self.rejects_path = rejects or states.root / f"{state.import_id}.rejects.ndjson"
        self.on_progress = on_progress or (lambda _st: None)
        self.codec = codec_for(settings.schema_registry_url, settings.topic("events.raw"))
        max_age = settings.import_max_age_s or math.inf
        self.bounds = Bounds(max_future_s=settings.ingest_max_future_s, max_age_s=max_age)
        self._seen: set[int] = set()  # hashes of this run's client event ids
        self._rejects: IO[bytes] | None = None
        self._started = time.monotonic()
        self._read_here = 0
        self._bytes_start = 0

    # --- 1-3: read, validate, send -----------------------------------------------------
    def send_all(self) -> ImportState:
        st = self.state
        st.runs += 1
        st.status, st.error, st.already_imported = "sending", None, 0
        st.rejects_file = str(self.rejects_path)
        st.bytes_total = sum(f.size for f in self.files)
        for f in self.files:
            st.files.setdefault(f.identity, FileProgress(f.name, f.size))
        st.bytes_done = sum(f.size for f in self.files if st.files[f.identity].done)
        self._bytes_start = st.bytes_done
        self._save()
        try:
            for f in self.files:
                self._send_file(f)
        finally:
            if self._rejects is not None:
                self._rejects.close()
        return st

    def _send_file(self, f: SourceFile) -> None:
        st, fp = self.state, self.state.files[f.identity]
        if fp.done:
            st.already_imported += fp.rows_done
            return
        st.already_imported += fp.rows_done
        rows, position = open_rows(local_path(f, self.s3), f.fmt, self.mapping, fp.rows_done)
        base = st.bytes_done
        chunk: list[Row] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= self.settings.import_chunk_events:
                self._send_chunk(f, chunk)
                chunk = []
                st.bytes_done = base + min(position(), f.size)
                self._progress()
        if chunk:
            self._send_chunk(f, chunk)
        fp.done = True
        st.bytes_done = base + f.size
        self._progress()

    def _send_chunk(self, f: SourceFile, chunk: list[Row]) -> None:
        st, t = self.state, self.target
        received = datetime.now(UTC)
        records: list[dict] = []
        reasons: Counter = Counter()
        first = last = None
        for row in chunk:
            errors = [{"field": "", "reason": row.error}] if row.error else []
            rec = None
            if not errors:
                rec, errors = validate_event(row.event, tenant_id=t.tenant_id,
                                             pii_salt=t.pii_salt, received_at=received,
                                             bounds=self.bounds)  # fmt: skip
            if errors or rec is None:
                reasons[_reason(errors)] += 1
                self._reject(f, row, errors)
                continue
            h = hash(rec["client_event_id"])
            if h in self._seen:
                st.duplicates += 1
                continue
            self._seen.add(h)
            records.append(rec)
            day = rec["event_timestamp"].date()
            first = day if first is None or day < first else first
            last = day if last is None or day > last else last
        if records and self.out is not None:
            keys = [learner_key_bytes(t.tenant_id, r["user_id"] or r["anonymous_id"])
                    for r in records]  # fmt: skip
            groups = encode_groups(records, keys, self.out.partitions, self.codec.encode_batch)
            headers = [("tenant_id", t.tenant_id.encode()),
                       ("import_id", st.import_id.encode())]  # fmt: skip
            self.out.send(groups, headers, int(received.timestamp() * 1000))
        # acknowledged (or a dry run): the resume point moves past the chunk
        st.read += len(chunk)
        self._read_here += len(chunk)
        st.accepted += len(records)
        st.rejected += sum(reasons.values())
        st.count_reason(reasons)
        if first is not None:
            st.first_day = min(st.first_day or first.isoformat(), first.isoformat())
            st.last_day = max(st.last_day or last.isoformat(), last.isoformat())  # type: ignore[union-attr]
        st.files[f.identity].rows_done = chunk[-1].number

    def _reject(self, f: SourceFile, row: Row, errors: list[dict]) -> None:
        if self._rejects is None:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            self._rejects = open(self.rejects_path, "ab")  # noqa: SIM115 (closed in send_all)
        cid = row.event.get("client_event_id") if isinstance(row.event, dict) else None
        line = {"file": f.name, "row": row.number, "client_event_id": cid, "errors": errors}
        self._rejects.write(orjson.dumps(line, default=str) + b"\n")

    def _progress(self) -> None:
        st = self.state
        elapsed = max(1e-6, time.monotonic() - self._started)
        st.events_per_s = round(self._read_here / elapsed, 1)
        byte_rate = (st.bytes_done - self._bytes_start) / elapsed
        left = st.bytes_total - st.bytes_done
        st.eta_s = round(left / byte_rate, 1) if byte_rate > 0 else None
        if self._rejects is not None:
            self._rejects.flush()
        self._save()

    def _save(self) -> None:
        if not self.state.dry_run:
            self.states.save(self.state)
        self.on_progress(self.state)

    # --- 4: applied by the worker, then the days recomputed ---------------------------
    def finish(self, wait_s: float | None = None, poll_s: float = 1.0) -> ImportState:
        """Wait until the worker has applied everything sent, then request the
        recompute of the touched days. ``wait_s`` None: as long as it takes."""
        st, out = self.state, self.out
        if out is None:
            st.status, st.finished_at = "done", time.time()
            self.on_progress(st)
            return st
        st.status = "applying"
        self._save()
        ends = out.end_offsets()
        group = f"{self.settings.topic_prefix}-worker"
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            st.records_behind = out.behind(group, ends)
            self._save()
            if st.records_behind == 0:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise ImportAborted(
                    f"the worker has not applied the import yet ({st.records_behind} "
                    "record(s) behind): is it running? Run the import again to finish"
                )
            time.sleep(poll_s)
        st.status = "recomputing"
        self._save()
        days = recompute_span(st.first_day, st.last_day, datetime.now(UTC).date())
        if days is not None:
            from streams.ticks import request_recompute

            request_recompute(out.bootstrap, self.settings, *days)
        st.status, st.finished_at = "done", time.time()
        self._report_done()
        self._save()
        return st

    # --- 5: the job's telemetry ---------------------------------------------------------
    def completed_event(self) -> dict:
        """The ``data_import_completed`` event of this import, as a client sends it."""
        st = self.state
        iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
        done = st.finished_at or time.time()
        return {
            "event_name": COMPLETED_EVENT,
            "client_event_id": f"data-import:{st.import_id}",
            "event_timestamp": iso(done),
            "anonymous_id": "data-importer",  # a platform event: no learner
            "persona": "advisor",  # staff-side; the event allows every persona
            "context_page": "/imports",
            "opt_out_status": False,
            "properties": {
                "job_id": st.import_id,
                "dataset": DATASET,
                "released_at": iso(st.started_at),
                "started_at": iso(st.started_at),
                "completed_at": iso(done),
                "events_imported": st.accepted,
                "rows_rejected": st.rejected,
            },
        }

    def _report_done(self) -> None:
        """Send the completion event the way the import's events went. Best
        effort: the import itself is done and stays so if Kafka refuses it."""
        if self.out is None:
            return
        t = self.target
        received = datetime.now(UTC)
        rec, errors = validate_event(self.completed_event(), tenant_id=t.tenant_id,
                                     pii_salt=t.pii_salt, received_at=received,
                                     bounds=self.bounds)  # fmt: skip
        if rec is None:
            log.warning("import %s: completion event invalid: %s", self.state.import_id, errors)
            return
        key = learner_key_bytes(t.tenant_id, rec["anonymous_id"])
        groups = encode_groups([rec], [key], self.out.partitions, self.codec.encode_batch)
        headers = [("tenant_id", t.tenant_id.encode()),
                   ("import_id", self.state.import_id.encode())]  # fmt: skip
        try:
            self.out.send(groups, headers, int(received.timestamp() * 1000))
        except ImportAborted as e:
            log.warning("import %s: completion event not sent: %s", self.state.import_id, e)


def recompute_span(first: str | None, last: str | None, today: date) -> tuple[date, date] | None:
    """The days whose daily score an import changed: its first day through
    21 days after its last, up to yesterday (today's comes tonight)."""
    if first is None or last is None:
        return None
    start = date.fromisoformat(first)
    end = min(date.fromisoformat(last) + timedelta(days=SCORE_REACH_DAYS), today - timedelta(1))
    return (start, end) if start <= end else None
