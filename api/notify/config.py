"""What users and tenants configured: email opt-in per user, webhooks per tenant.

A webhook's signing secret is stored sealed (api/sealing.py, key
SKILLSTREAM_WEBHOOK_KEYS, never in the store) and shown once, at creation.
Its URL must pass the destination check (destinations.py)."""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.notify.destinations import DestinationRefused, Networks, check
from api.sealing import Sealer, reseal_rows
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
    secret: str = field(repr=False)  # plain only in memory: never logged
    active: bool = True


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


def new_webhook_secret() -> str:
    """The Standard Webhooks form: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def add_webhook(
    store: Store, tenant_id: str, url: str, actor: str, sealer: Sealer, allow: Networks
) -> Webhook:
    try:
        check(url, allow)
    except DestinationRefused as exc:
        raise ConfigError(str(exc)) from exc
    hook = Webhook("wh_" + uuid.uuid4().hex[:12], tenant_id, url, new_webhook_secret(), True)
    _write(store, hook, actor, sealer)
    return hook


def _write(store: Store, h: Webhook, actor: str, sealer: Sealer) -> None:
    store.insert(
        "webhooks",
        [
            {
                "tenant_id": h.tenant_id,
                "webhook_id": h.webhook_id,
                "url": h.url,
                "secret": sealer.seal(h.secret),
                "active": int(h.active),
                "created_by": actor,
                "created_at": datetime.now(UTC),
                "version": time.time_ns(),
            }
        ],
    )


def remove_webhook(
    store: Store, tenant_id: str, webhook_id: str, actor: str, sealer: Sealer
) -> Webhook:
    found = [h for h in webhooks(store, tenant_id, sealer) if h.webhook_id == webhook_id]
    if not found:
        raise ConfigError(f"no webhook {webhook_id!r}")
    h = Webhook(**{**found[0].__dict__, "active": False})
    _write(store, h, actor, sealer)
    return h


def webhooks(store: Store, tenant_id: str, sealer: Sealer) -> list[Webhook]:
    rows = store.query(
        "SELECT webhook_id, tenant_id, url, secret, active FROM webhooks FINAL"
        " WHERE tenant_id = {t:String} AND active = 1 ORDER BY webhook_id",
        {"t": tenant_id},
    )
    return [
        Webhook(r["webhook_id"], r["tenant_id"], r["url"], sealer.open(r["secret"]), True)
        for r in rows
    ]


def reseal_secrets(store: Store, sealer: Sealer) -> int:
    """Seal webhook secrets left in plain text by an older version, and move
    secrets sealed under an older key to the newest (run at API start;
    idempotent); then merge the table so the old versions are gone."""
    rows = store.query("SELECT * FROM webhooks FINAL")

    def bump(row: dict) -> None:
        row["version"] = time.time_ns()

    changed = reseal_rows(rows, "secret", sealer, bump)
    if changed:
        store.insert("webhooks", changed)
        store.command("OPTIMIZE TABLE webhooks FINAL")
    return len(changed)
