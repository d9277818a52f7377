"""One job, every channel, exactly once per (event, recipient, channel).

For each target the fan-out derives an idempotency key and consults the
delivery log (``notification_deliveries``) first: a key already ``sent`` is
skipped, so a rerun after a crash, or the same event delivered twice, sends
nothing again. The log is written right after each delivery. The one window
left — a crash after a remote accepted but before the log row landed — is
closed on the receiving side: the in-app row is keyed by the idempotency key
(ReplacingMergeTree), email carries it as Message-ID, webhooks as
``Idempotency-Key``, the Kafka record as ``event_id``. A failing channel is
logged as ``failed`` and never stops the others; a rerun retries it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.capabilities import CapabilityError, require_flag
from api.notify import channels
from api.notify.config import Webhook, get_prefs, webhooks
from api.sealing import Sealer
from core.settings import Settings
from sinks.store import Store

log = logging.getLogger("skillstream.notify")


def idem_key(event_id: str, recipient: str, channel: str) -> str:
    return hashlib.sha256(f"{event_id}\n{recipient}\n{channel}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Target:
    channel: str  # in_app | email | webhook | kafka
    recipient: str  # user id, email address, webhook id, topic
    send: Callable[[str], None]  # key -> deliver or raise


class Notifier:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        publisher: channels.ReadyPublisher | None,
        webhook_sealer: Sealer,
    ) -> None:
        self.store = store
        self.settings = settings
        self.publisher = publisher
        self.webhook_sealer = webhook_sealer
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def sent(self, key: str) -> bool:
        rows = self.store.query(
            "SELECT status FROM notification_deliveries FINAL WHERE idem_key = {k:String}",
            {"k": key},
        )
        return bool(rows) and rows[0]["status"] == "sent"

    def _log(self, key: str, event: dict, t: Target, status: str, attempts: int, detail: str):
        self.store.insert(
            "notification_deliveries",
            [
                {
                    "idem_key": key,
                    "tenant_id": event["tenant_id"],
                    "event_id": event["event_id"],
                    "recipient": t.recipient,
                    "channel": t.channel,
                    "status": status,
                    "attempts": attempts,
                    "detail": detail[:2000],
                    "at": datetime.now(UTC),
                    "version": time.time_ns(),
                }
            ],
        )

    def targets(self, event: dict[str, Any]) -> list[Target]:
        s, tenant, user = self.settings, event["tenant_id"], event["user_id"]
        out = [Target("in_app", user, lambda k: channels.in_app(self.store, k, event))]
        prefs = get_prefs(self.store, tenant, user)
        if prefs.email_opt_in and s.smtp_host:
            out.append(
                Target(
                    "email",
                    prefs.email,
                    lambda k: channels.email(
                        s.smtp_host or "", s.smtp_port, s.smtp_from, prefs.email, k, event
                    ),
                )
            )
        for hook in webhooks(self.store, tenant, self.webhook_sealer):
            out.append(Target("webhook", hook.webhook_id, self._webhook_sender(hook, event)))
        if self.publisher is not None:
            pub = self.publisher
            out.append(Target("kafka", pub.topic, lambda _k: pub.publish(event)))
        return out

    def _webhook_sender(self, hook: Webhook, event: dict[str, Any]) -> Callable[[str], None]:
        s = self.settings

        def send(key: str) -> None:
            t = Target("webhook", hook.webhook_id, send)
            try:  # the flag is read at each delivery: switching it off stops the next one
                require_flag(self.store, hook.tenant_id, "webhooks")
            except CapabilityError as exc:
                raise channels.Refused(str(exc)) from exc
            channels.webhook(
                hook.url,
                hook.secret,
                key,
                event,
                allow=s.webhook_allowed_networks,
                attempts=s.webhook_max_attempts,
                backoff_s=s.webhook_backoff_s,
                timeout_s=s.webhook_timeout_s,
                on_attempt=lambda n, err: self._log(key, event, t, "retrying", n, err),
            )

        return send

    def fan_out(self, event: dict[str, Any]) -> dict[str, str]:
        """Deliver ``event`` on every channel; return channel:recipient -> outcome."""
        outcome: dict[str, str] = {}
        for t in self.targets(event):
            key = idem_key(event["event_id"], t.recipient, t.channel)
            name = f"{t.channel}:{t.recipient}"
            with self._lock(key):
                if self.sent(key):
                    outcome[name] = "already_sent"
                    continue
                try:
                    t.send(key)
                except channels.Refused as exc:  # policy, not a failure: logged as such
                    log.warning("notification %s refused: %s", name, exc)
                    self._log(key, event, t, "refused", 0, str(exc))
                    outcome[name] = "refused"
                    continue
                except Exception as exc:  # noqa: BLE001 (one channel never blocks the others)
                    log.warning("notification %s failed: %s", name, exc)
                    self._log(key, event, t, "failed", 0, repr(exc))
                    outcome[name] = "failed"
                    continue
                self._log(key, event, t, "sent", 1, "")
                outcome[name] = "sent"
        return outcome
