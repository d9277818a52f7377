"""Delivery channels. Each ``send`` either delivers or raises; the fan-out
(fanout.py) owns idempotency, logging and isolation between channels."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
from confluent_kafka import Producer
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential

from schemas import ready
from sinks.store import Store

SIGNATURE_HEADER = "X-SkillStream-Signature"


def in_app(store: Store, key: str, event: dict[str, Any]) -> None:
    # The idempotency key is the row's id: a rerun replaces, never adds.
    store.insert(
        "notifications",
        [
            {
                "tenant_id": event["tenant_id"],
                "user_id": event["user_id"],
                "notification_id": key,
                "kind": "report_ready",
                "title": event["title"],
                "body": event["body"],
                "link": event["status_url"],
                "created_at": datetime.now(UTC),
                "read_at": None,
                "version": 1,
            }
        ],
    )


def email(host: str, port: int, sender: str, to: str, key: str, event: dict[str, Any]) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, event["title"]
    # Receivers that dedupe on Message-ID see one message even if a crash
    # between the SMTP accept and our log made us send twice.
    msg["Message-ID"] = f"<{key}@skillstream>"
    msg.set_content(
        f"{event['body']}\n\nDownload (until {event['link_expires_at']}):\n"
        f"{event['download_url']}\n"
    )
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(msg)


def sign(secret: str, body: bytes, ts: int) -> str:
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver runs: HMAC-SHA256 over ``"<t>." + body`` with the
    webhook's secret, and a timestamp bound against replays."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), header)


def webhook(
    url: str,
    secret: str,
    key: str,
    event: dict[str, Any],
    *,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    on_attempt: Any = None,
) -> int:
    """POST the signed event; retry with exponential backoff. Returns the
    number of attempts used; raises after the last failure."""
    body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()

    def log_attempt(state: RetryCallState) -> None:
        if on_attempt and state.outcome is not None and state.outcome.failed:
            on_attempt(state.attempt_number, repr(state.outcome.exception()))

    for attempt in Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_s, max=30),
        after=log_attempt,
        reraise=True,
    ):
        with attempt:
            ts = int(time.time())
            r = httpx.post(
                url,
                content=body,
                timeout=timeout_s,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, body, ts),
                    "Idempotency-Key": key,
                    "X-SkillStream-Event": "report.ready",
                },
            )
            r.raise_for_status()
    return attempt.retry_state.attempt_number


class ReadyPublisher:
    """``reports.ready`` for external subscribers (idempotent producer, acks=all)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": 10_000,
                "log_level": 3,
            }
        )

    def publish(self, event: dict[str, Any]) -> None:
        record = {
            k: event[k]
            for k in (
                "event_id",
                "export_id",
                "tenant_id",
                "user_id",
                "report",
                "format",
                "rows",
                "bytes",
                "status_url",
            )
        }
        record["link_expires_at"] = datetime.fromisoformat(event["link_expires_at"])
        record["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
        errors: list[Any] = []
        self._producer.produce(
            self.topic,
            ready.encode(record),
            f"{event['tenant_id']}:{event['export_id']}".encode(),
            on_delivery=lambda err, _m: errors.append(err) if err else None,
        )
        if self._producer.flush(15) or errors:
            raise RuntimeError(f"reports.ready not acknowledged: {errors or 'timeout'}")

    def close(self) -> None:
        self._producer.flush(5)
