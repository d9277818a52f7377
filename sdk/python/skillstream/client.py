"""SkillStream event emitter for backend services.

Batches events to ``POST /v1/events/batch`` from a background thread: sends
at ``flush_at`` events or every ``flush_interval_s``, retries 503/429/5xx and
network errors with exponential backoff and jitter (never sooner than the
server's ``Retry-After``), re-sends the same ``client_event_id`` on every
retry (the API answers ``duplicates`` for what it already has), never retries
a rejected event, and flushes at interpreter exit. Thread-safe.

Imports only the standard library and httpx, so services can install it
without the rest of SkillStream.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = ["Emitter", "backoff_delay", "parse_retry_after"]

log = logging.getLogger("skillstream.client")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# anonymous_id of events that name only a user: stable per user, so every
# backend event of a user shares one visitor id
_USER_NAMESPACE = uuid.UUID("5b0d6a52-8f1e-4d1c-9a47-3f5c2f1e9b10")

ErrorHandler = Callable[[str, dict[str, Any]], None]


def backoff_delay(
    attempt: int,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential with equal jitter (half fixed, half random), never below Retry-After."""
    exp = min(max_s, base_s * 2**attempt)
    delay = exp / 2 + rand() * exp / 2
    return delay if retry_after_s is None else max(delay, retry_after_s)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


class _Split(Exception):
    """The server found the batch too large: it was halved, send again at once."""


class _Retry(Exception):
    def __init__(self, retry_after_s: float | None, reason: str) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Emitter:
    """Queue events with :meth:`emit`; a background thread sends them."""

    def __init__(
        self,
        host: str,
        write_key: str,
        *,
        persona: str | None = None,
        context_page: str = "server",
        flush_at: int = 100,
        flush_interval_s: float = 5.0,
        max_queue: int = 10_000,
        max_batch: int = 500,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
        on_error: ErrorHandler | None = None,
        client: httpx.Client | None = None,
        flush_at_exit: bool = True,
        exit_timeout_s: float = 10.0,
    ) -> None:
        self.host = host.rstrip("/")
        self.persona = persona
        self.context_page = context_page
        self.flush_at = flush_at
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.on_error = on_error or (lambda kind, detail: log.warning("%s: %s", kind, detail))
        self.exit_timeout_s = exit_timeout_s
        self._http = client or httpx.Client(timeout=timeout_s)
        self._auth = {"Authorization": f"Bearer {write_key}"}
        self._queue: deque[dict[str, Any]] = deque()
        self._inflight: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._flush_wanted = False
        self._closing = False
        self._attempt = 0
        self._retry_at = 0.0
        self._first_at = 0.0
        self._salt: str | None = None
        self._stats = dict.fromkeys(
            ("sent", "duplicates", "rejected", "dropped", "retries", "failed"), 0
        )
        self._thread = threading.Thread(target=self._run, name="skillstream-emitter", daemon=True)
        self._thread.start()
        if flush_at_exit:
            atexit.register(self.close)

    # --- public ------------------------------------------------------------------------
    def emit(
        self,
        event_name: str,
        properties: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        persona: str | None = None,
        context_page: str | None = None,
        context_device: str | None = None,
        opt_out_status: bool = False,
        email: str | None = None,
        event_timestamp: datetime | None = None,
        client_event_id: str | None = None,
        **ids: Any,
    ) -> str:
        """Queue one event; return its ``client_event_id`` (the idempotency key).

        ``ids`` are the envelope's conditional fields: ``program_id``,
        ``cohort_id``, ``plan_id``, ``assessment_id``, ``readiness_score``.
        A raw ``email`` is hashed here (SHA-256 with the tenant's salt) before
        it is sent; the address itself never leaves the process.
        """
        persona = persona or self.persona
        if not persona:
            raise ValueError("persona is required (here or in Emitter(persona=...))")
        if not anonymous_id:
            if not user_id:
                raise ValueError("anonymous_id or user_id is required")
            anonymous_id = str(uuid.uuid5(_USER_NAMESPACE, user_id))
        at = (event_timestamp or datetime.now(UTC)).astimezone(UTC)
        stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event: dict[str, Any] = {
            "event_name": event_name,
            "client_event_id": client_event_id or str(uuid.uuid4()),
            "event_timestamp": stamp,
            "anonymous_id": anonymous_id,
            "persona": persona,
            "context_page": context_page or self.context_page,
            "opt_out_status": opt_out_status,
            "properties": properties or {},
            **ids,
        }
        if user_id:
            event["user_id"] = user_id
        if context_device:
            event["context_device"] = context_device
        if email:
            event["_email"] = email  # hashed by the sender once it knows the salt
        with self._cv:
            if self._closing:
                raise RuntimeError("emitter is closed")
            if not self._queue:
                self._first_at = time.monotonic()
                self._cv.notify_all()  # the sender starts the interval's clock
            self._queue.append(event)
            over = len(self._queue) + len(self._inflight) - self.max_queue
            for _ in range(max(0, over)):
                lost = self._queue.popleft()
                self._stats["dropped"] += 1
                self.on_error("queue_full", {"dropped": lost["client_event_id"]})
            if len(self._queue) >= self.flush_at:
                self._cv.notify_all()
        return event["client_event_id"]

    track = emit

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything queued; True once nothing is left (False on timeout)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cv:
            self._flush_wanted = True
            self._cv.notify_all()
            while self._queue or self._inflight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not self._thread.is_alive():
                    return False
                self._cv.wait(left if left is not None else 1.0)
            return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush (up to ``timeout_s``, default ``exit_timeout_s``) and stop the thread."""
        timeout_s = self.exit_timeout_s if timeout_s is None else timeout_s
        atexit.unregister(self.close)
        done = self.flush(timeout_s)
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(5)
        self._http.close()
        if not done:
            self.on_error("unsent_at_close", {"events": self.queued})
        return done

    @property
    def queued(self) -> int:
        with self._cv:
            return len(self._queue) + len(self._inflight)

    @property
    def stats(self) -> dict[str, int]:
        with self._cv:
            return {**self._stats, "queued": len(self._queue) + len(self._inflight)}

    # --- the sender thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._closing:
                        return
                    now = time.monotonic()
                    due = self._queue and (
                        self._flush_wanted
                        or len(self._queue) >= self.flush_at
                        or now - self._first_at >= self.flush_interval_s
                    )
                    waiting = now < self._retry_at
                    if (due or self._inflight) and not waiting:
                        break
                    wake = self._retry_at if waiting else self._first_at + self.flush_interval_s
                    self._cv.wait(max(0.01, wake - now) if self._queue or waiting else None)
                if not self._inflight:
                    n = min(self.max_batch, len(self._queue))
                    self._inflight = [self._queue.popleft() for _ in range(n)]
                batch = self._inflight
            try:
                self._send(batch)
            except _Split:
                continue
            except _Retry as exc:
                self._backoff(exc.retry_after_s, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 (the sender thread must survive)
                log.exception("emitter send failed")
                self._backoff(None, repr(exc))
                continue
            with self._cv:
                self._inflight = []
                self._attempt = 0
                self._retry_at = 0.0
                if not self._queue:
                    self._flush_wanted = False
                self._cv.notify_all()

    def _backoff(self, retry_after_s: float | None, reason: str) -> None:
        with self._cv:
            delay = backoff_delay(
                self._attempt, self.backoff_base_s, self.backoff_max_s, retry_after_s
            )
            self._attempt += 1
            self._stats["retries"] += 1
            self._retry_at = time.monotonic() + delay
        log.info("send failed (%s); retry %d in %.2fs", reason, self._attempt, delay)

    def _email_salt(self) -> str:
        if self._salt is None:
            try:
                r = self._http.get(f"{self.host}/v1/events/dictionary", headers=self._auth)
            except httpx.TransportError as exc:
                raise _Retry(None, f"dictionary: {exc}") from exc
            if r.status_code != 200:
                raise _Retry(None, f"dictionary: HTTP {r.status_code}")
            self._salt = str(r.json()["email_hash_salt"])
        return self._salt

    def _wire(self, event: dict[str, Any]) -> dict[str, Any]:
        out = dict(event)
        email = out.pop("_email", None)
        if email:
            digest = self._email_salt() + email.strip().lower()
            out["email_sha256"] = hashlib.sha256(digest.encode()).hexdigest()
        return out

    def _send(self, batch: list[dict[str, Any]]) -> None:
        body = {"events": [self._wire(e) for e in batch]}
        try:
            r = self._http.post(f"{self.host}/v1/events/batch", json=body, headers=self._auth)
        except httpx.TransportError as exc:
            raise _Retry(None, f"{type(exc).__name__}: {exc}") from exc
        if r.status_code in RETRY_STATUS:
            raise _Retry(parse_retry_after(r.headers.get("Retry-After")), f"HTTP {r.status_code}")
        if r.status_code == 413 and len(batch) > 1:
            with self._cv:  # send it again in halves
                half = len(batch) // 2
                self.max_batch = max(1, half)
                self._queue.extendleft(reversed(batch[half:]))
                self._inflight = batch[:half]
            raise _Split()
        if r.status_code != 200:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            with self._cv:
                self._stats["failed"] += len(batch)
            self.on_error(
                "http",
                {"status": r.status_code, "detail": detail,
                 "events": [e["client_event_id"] for e in batch]},
            )  # fmt: skip
            return
        out = r.json()
        for rej in out.get("rejected", []):
            self.on_error("rejected", rej)
        with self._cv:
            self._stats["sent"] += len(out.get("accepted", []))
            self._stats["duplicates"] += len(out.get("duplicates", []))
            self._stats["rejected"] += len(out.get("rejected", []))
