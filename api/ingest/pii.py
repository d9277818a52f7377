"""PII never reaches Kafka: raw values become HMAC-SHA256 with a tenant secret.

E-mail has one canonical hash whichever way it arrives, so identities merge
across the browser SDK, backend emitters and raw API calls:

    digest   = SHA-256(client_salt + normalised e-mail)      (hex; what clients send)
    pii_hash = HMAC-SHA256(tenant secret, digest)            (what is stored)

``client_salt`` is per tenant and derived from its secret; SDKs read it from
``GET /v1/events/dictionary`` (it is no secret: a browser sees it), so the raw
address never leaves the page, and the server's keyed HMAC makes stored hashes
useless outside the tenant. A raw ``email`` sent to the API goes through the
same two steps on the server.
"""

from __future__ import annotations

import hashlib
import hmac

_CLIENT_SALT_LABEL = b"skillstream:email-client-salt:v1"


def normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit() or ch == "+")
    return value


def client_salt(tenant_secret: str) -> str:
    return hmac.new(tenant_secret.encode(), _CLIENT_SALT_LABEL, hashlib.sha256).hexdigest()[:32]


def email_digest(salt: str, email: str) -> str:
    """The client-side step (the SDKs compute exactly this)."""
    return hashlib.sha256((salt + normalise("email", email)).encode()).hexdigest()


def hash_pii(tenant_secret: str, kind: str, value: str) -> str:
    if kind == "email":
        value = email_digest(client_salt(tenant_secret), value)
    elif kind != "email_sha256":
        value = normalise(kind, value)
    return hmac.new(tenant_secret.encode(), value.encode(), hashlib.sha256).hexdigest()
