"""Delivery channels. Each ``send`` either delivers or raises; the fan-out
(fanout.py) owns idempotency, logging and isolation between channels."""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
from confluent_kafka import Producer
from standardwebhooks import Webhook as StandardWebhook
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from api.notify.destinations import Destination, DestinationRefused, Networks, check
from schemas import ready
from sinks.store import Store

EVENT_TYPE = "report.ready"


class Refused(RuntimeError):
    """A delivery that must not happen (capability off, destination not public):
    logged as `refused`, never retried by the backoff."""


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


# A webhook tells a tenant's system that a file is ready; it does not hand
# the file's bearer link to whoever runs the receiver (as the Kafka record,
# it carries status_url: the receiver fetches the link with a token).
_NOT_IN_WEBHOOKS = frozenset({"download_url"})


def envelope(event: dict[str, Any]) -> bytes:
    """The Standard Webhooks payload shape: type, timestamp, data."""
    data = {k: v for k, v in event.items() if k not in _NOT_IN_WEBHOOKS}
    body = {"type": EVENT_TYPE, "timestamp": event["occurred_at"], "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signed_headers(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard
    Webhooks v1: HMAC-SHA256 over "id.timestamp.body", signed by the
    maintained `standardwebhooks` library), so a receiver verifies with any
    off-the-shelf implementation."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": StandardWebhook(secret).sign(msg_id, now, body.decode()),
    }


def webhook(
    url: str,
    secret: str,
    key: str,
    event: dict[str, Any],
    *,
    allow: Networks,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    on_attempt: Any = None,
) -> int:
    """POST the signed event; retry with exponential backoff. Returns the
    number of attempts used; raises after the last failure. The destination
    is checked again before each attempt and the request goes to the address
    that passed (DNS rebinding); redirects are not followed and no proxy from
    the environment is used."""
    body = envelope(event)

    def log_attempt(state: RetryCallState) -> None:
        if on_attempt and state.outcome is not None and state.outcome.failed:
            on_attempt(state.attempt_number, repr(state.outcome.exception()))

    try:
        for attempt in Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff_s, max=30),
            retry=retry_if_not_exception_type(DestinationRefused),  # a refusal is final
            after=log_attempt,
            reraise=True,
        ):
            with attempt:
                _post(check(url, allow), secret, key, body, timeout_s)
    except DestinationRefused as exc:
        raise Refused(str(exc)) from exc
    return attempt.retry_state.attempt_number


def _post(dest: Destination, secret: str, key: str, body: bytes, timeout_s: float) -> None:
    headers = {
        "Content-Type": "application/json",
        "Host": dest.host_header(),
        "Idempotency-Key": key,
        "X-SkillStream-Event": EVENT_TYPE,
        **signed_headers(secret, key, body),
    }
    # Streamed and never read: a receiver's answer is not ours to fetch
    # (nor to hold in memory, however large it is).
    with (
        httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout_s) as client,
        client.stream(
            "POST",
            dest.pinned_url(),
            content=body,
            headers=headers,
            extensions={"sni_hostname": dest.hostname},
        ) as r,
    ):
        r.raise_for_status()


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
