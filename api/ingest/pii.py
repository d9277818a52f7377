"""PII never reaches Kafka: raw values become HMAC-SHA256 with a tenant secret."""

from __future__ import annotations

import hashlib
import hmac


def normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit() or ch == "+")
    return value


def hash_pii(tenant_secret: str, kind: str, value: str) -> str:
    return hmac.new(
        tenant_secret.encode(), normalise(kind, value).encode(), hashlib.sha256
    ).hexdigest()
