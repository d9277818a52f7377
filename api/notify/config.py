"""What users and tenants configured: email opt-in per user, webhooks per tenant."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from sinks.store import Store

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Prefs:
    email: str
    email_opt_in: bool


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    tenant_id: str
    url: str
    secret: str
    active: bool


def get_prefs(store: Store, tenant_id: str, user_id: str) -> Prefs:
    rows = store.query(
        "SELECT email, email_opt_in FROM notification_prefs FINAL"
        " WHERE tenant_id = {t:String} AND user_id = {u:String}",
        {"t": tenant_id, "u": user_id},
    )
    return Prefs(rows[0]["email"], bool(rows[0]["email_opt_in"])) if rows else Prefs("", False)


def set_prefs(store: Store, tenant_id: str, user_id: str, email: str, opt_in: bool) -> Prefs:
    if opt_in and not _EMAIL.match(email):
        raise ConfigError("email opt-in needs a valid email address")
    store.insert(
        "notification_prefs",
        [
            {
                "tenant_id": tenant_id,
                "user_id": user_id,
                "email": email,
                "email_opt_in": int(opt_in),
                "version": time.time_ns(),
            }
        ],
    )
    return Prefs(email, opt_in)


def add_webhook(store: Store, tenant_id: str, url: str, actor: str) -> Webhook:
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError("webhook url must be http(s)://host/...")
    hook = Webhook("wh_" + uuid.uuid4().hex[:12], tenant_id, url, secrets.token_hex(32), True)
    _write(store, hook, actor)
    return hook


def _write(store: Store, h: Webhook, actor: str) -> None:
    store.insert(
        "webhooks",
        [
            {
                "tenant_id": h.tenant_id,
                "webhook_id": h.webhook_id,
                "url": h.url,
                "secret": h.secret,
                "active": int(h.active),
                "created_by": actor,
                "created_at": datetime.now(UTC),
                "version": time.time_ns(),
            }
        ],
    )


def remove_webhook(store: Store, tenant_id: str, webhook_id: str, actor: str) -> Webhook:
    found = [h for h in webhooks(store, tenant_id) if h.webhook_id == webhook_id]
    if not found:
        raise ConfigError(f"no webhook {webhook_id!r}")
    h = Webhook(**{**found[0].__dict__, "active": False})
    _write(store, h, actor)
    return h


def webhooks(store: Store, tenant_id: str) -> list[Webhook]:
    rows = store.query(
        "SELECT webhook_id, tenant_id, url, secret, active FROM webhooks FINAL"
        " WHERE tenant_id = {t:String} AND active = 1 ORDER BY webhook_id",
        {"t": tenant_id},
    )
    return [Webhook(r["webhook_id"], r["tenant_id"], r["url"], r["secret"], True) for r in rows]
