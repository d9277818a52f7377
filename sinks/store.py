"""One ClickHouse interface, two engines, the same SQL.

``EmbeddedStore`` runs ClickHouse in-process through chdb on a data path;
``ServerStore`` talks to a ClickHouse server through clickhouse-connect.
Both take the same SQL text with ClickHouse's server-side parameters
(``{name:Type}``), so nothing above this module knows which one it has.

chdb serves one process per data path. The process that owns the embedded
store is the API process (it also runs the sink); every other process
reaches the data through that process's HTTP API (see README, Architecture).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import orjson

Row = dict[str, Any]
# Embedded sessions per store: one per core on the machine this is sized for
# (2), so a report's independent queries, or a report and an export's
# stream, overlap (3 or 4 measured no faster there: the work is CPU).
SESSIONS = 2


class StoreError(RuntimeError):
    """The store is unreachable or rejected a statement."""


class Store(Protocol):
    kind: str

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str | None = None) -> None: ...

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV"
    ) -> Iterator[bytes]: ...

    def raw(self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV") -> bytes: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _ch_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _ch_time(value: datetime) -> str:
    # %Y is not zero-padded below year 1000 on glibc: "233-03-26" is no time to ClickHouse
    return f"{value.year:04d}-{value:%m-%d %H:%M:%S.%f}"


_ORJSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE


def encode_rows(rows: Iterable[Row]) -> bytes:
    # Times in ClickHouse's text form ('YYYY-MM-DD hh:mm:ss.ffffff'), which
    # both engines parse with their default input settings.
    return b"".join(orjson.dumps(r, default=_json_default, option=_ORJSON_OPTS) for r in rows)


def insert_sql(table: str, dedup_token: str | None) -> str:
    # The token makes a replayed batch a no-op: MergeTree tables keep a window
    # of recent tokens (non_replicated_deduplication_window in the DDL).
    # A batch of imported history spans many days (events are partitioned by
    # day): no cap on the partitions one insert touches.
    settings = " SETTINGS max_partitions_per_insert_block=0"
    if dedup_token:
        if "'" in dedup_token or "\\" in dedup_token:
            raise ValueError("dedup token must not contain quotes")
        settings += f", insert_deduplication_token='{dedup_token}'"
    if not table.replace("_", "").isalnum():
        raise ValueError(f"bad table name {table!r}")
    return f"INSERT INTO {table}{settings} FORMAT JSONEachRow"


# ClickHouse reads a query parameter's text in its Escaped (TSV) form: a raw
# tab, newline or backslash in a string would end or bend the value (a user id
# with a tab was a 500: BAD_QUERY_PARAMETER), so they travel escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                          "\0": "\\0", "\b": "\\b", "\f": "\\f"})  # fmt: skip


def _literal(value: Any) -> str:
    """A value in ClickHouse's text form for query parameters (chdb takes text;
    clickhouse-connect formats lists itself)."""
    if isinstance(value, (list, tuple, set)):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    if isinstance(value, datetime):
        return _ch_time(value)
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    return value


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPES).replace("'", "\\'") + "'"
    return str(_literal(value))


class _ReadWriteLock:
    """Any number of readers, or one writer; a waiting writer goes before
    new readers, so polling dashboards cannot starve the sink's round. A
    thread already reading (an open stream) may read again past a waiting
    writer, and may not write: either would wait for itself forever."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0
        self._mine = threading.local()

    def _held(self) -> int:
        return getattr(self._mine, "reads", 0)

    @contextmanager
    def reading(self) -> Iterator[None]:
        again = self._held() > 0
        with self._cond:
            self._cond.wait_for(lambda: again or not (self._writing or self._waiting))
            self._readers += 1
        self._mine.reads = self._held() + 1
        try:
            yield
        finally:
            self._mine.reads = self._held() - 1
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        if self._held():
            raise StoreError("a write from a thread that holds a read (an open stream)")
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class EmbeddedStore:
    """ClickHouse in this process, via chdb (one process per data path)."""

    kind = "embedded"

    def __init__(self, path: Path, sessions: int = SESSIONS) -> None:
        from chdb import session

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A session runs one statement at a time; sessions on one path run
        # in parallel (each its own query context, the GIL released while
        # ClickHouse works), so a report's queries and an export's stream
        # each take a free one instead of queueing behind one.
        self._sessions: list[Any] = []
        try:
            for _ in range(max(1, sessions)):
                self._sessions.append(session.Session(str(path)))
        except Exception as exc:  # chdb raises plain RuntimeError on lock conflicts
            for s in self._sessions:
                s.close()
            raise StoreError(
                f"cannot open embedded ClickHouse at {path}: {exc}. "
                "Another process owns it; go through the running API instead."
            ) from exc
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        for s in self._sessions:
            self._free.put(s)
        # Reads overlap each other but never a write: an INSERT is not atomic
        # with its materialized views, so a read beside it could see a table
        # without its view's rows or the reverse (kept weeks and their write
        # counts, api/reports/summaries.py, rely on seeing both or neither).
        self._rw = _ReadWriteLock()

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Any]:
        with self._rw.writing() if write else self._rw.reading():
            s = self._free.get()
            try:
                yield s
            finally:
                self._free.put(s)

    def _run(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, Any] | None = None,
        write: bool = False,
    ):
        with self._session(write) as s:
            try:
                text = {k: _literal(v) for k, v in params.items()} if params else None
                return s.query(sql, fmt, params=text)
            except Exception as exc:
                raise StoreError(str(exc)) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        res = self._run(sql, "JSONEachRow", params)
        raw = res.bytes() if res is not None else b""
        return [json.loads(line) for line in raw.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params, write=True)

    def raw(self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV") -> bytes:
        """The whole result in ClickHouse's output format ``fmt``."""
        res = self._run(sql, fmt, params)
        return res.bytes() if res is not None else b""

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str | None = None) -> None:
        if not rows:
            return
        sql = insert_sql(table, dedup_token) + "\n" + encode_rows(rows).decode()
        self._run(sql, "CSV", write=True)

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV"
    ) -> Iterator[bytes]:
        """The result in ClickHouse's ``fmt``, block by block. One session is
        held until the iterator is exhausted or closed, so consume it
        promptly. chdb writes a format's header (CSVWithNames) again in every
        block: stream a headerless format."""
        with self._session() as s:
            try:
                text = {k: _literal(v) for k, v in params.items()} if params else None
                with s.send_query(sql, fmt, params=text) as result:
                    for chunk in result:
                        yield chunk.bytes()
            except Exception as exc:
                raise StoreError(str(exc)) from exc

    def ping(self) -> bool:
        try:
            return self.query("SELECT 1 AS ok") == [{"ok": 1}]
        except StoreError:
            return False

    def close(self) -> None:
        with self._rw.writing():  # none is closed under a running statement
            for s in reversed(self._sessions):
                s.close()


class ServerStore:
    """A ClickHouse server, via clickhouse-connect's HTTP client."""

    kind = "server"

    def __init__(self, url: str) -> None:
        self._url = urlparse(url)
        # One client per thread (the sink's, the jobs', the API's pool): a
        # clickhouse-connect client is not safe for concurrent use, and a
        # shared session id makes the server refuse concurrent queries
        # ("session is locked"). No session: nothing here needs one.
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()

    @property
    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import clickhouse_connect

            u = self._url
            client = clickhouse_connect.get_client(
                host=u.hostname or "localhost",
                port=u.port or (8443 if u.scheme == "https" else 8123),
                username=u.username or "default",
                password=u.password or "",
                database=(u.path or "/").strip("/") or "default",
                secure=u.scheme == "https",
                autogenerate_session_id=False,
                # JSONEachRow output keeps both engines' results identical.
                settings={"output_format_json_quote_64bit_integers": 0},
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            raw = self._client.raw_query(sql, parameters=dict(params or {}), fmt="JSONEachRow")
        except Exception as exc:
            raise StoreError(str(exc)) from exc
        return [json.loads(line) for line in raw.splitlines() if line]

    def raw(self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV") -> bytes:
        try:
            return self._client.raw_query(sql, parameters=dict(params or {}), fmt=fmt)
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def insert(self, table: str, rows: Sequence[Row], dedup_token: str | None = None) -> None:
        if not rows:
            return
        try:
            self._client.command(insert_sql(table, dedup_token), data=encode_rows(rows))
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None, fmt: str = "CSV"
    ) -> Iterator[bytes]:
        try:
            with self._client.raw_stream(sql, parameters=dict(params or {}), fmt=fmt) as result:
                yield from result
        except Exception as exc:
            raise StoreError(str(exc)) from exc

    def ping(self) -> bool:
        return bool(self._client.ping())

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def open_store(clickhouse_url: str | None, chdb_path: Path) -> Store:
    """The store the settings ask for, with migrations applied."""
    from sinks.migrations import migrate

    store: Store = ServerStore(clickhouse_url) if clickhouse_url else EmbeddedStore(chdb_path)
    migrate(store)
    return store
