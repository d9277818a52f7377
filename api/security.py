"""Credentials: ingest write keys and signed bearer tokens.

Write keys authenticate event producers (one per tenant); only their SHA-256
is stored. Bearer tokens authenticate people: a JWT (HS256, PyJWT) carrying
tenant, role, user and capabilities, with an expiry. The tenant always comes
from the credential, never from the request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field

import jwt

ROLES = (
    "platform_admin",
    "company_admin",
    "program_owner",
    "manager",
    "mentor",
    "learner",
    "analyst",
)

# What each role may do unless the tenant's flags take it away (issue 7).
ROLE_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "platform_admin": ("reports", "export_csv", "export_pdf", "audit_read", "admin", "sql"),
    "company_admin": ("reports", "export_csv", "export_pdf", "audit_read"),
    "program_owner": ("reports", "export_csv", "export_pdf"),
    "manager": ("reports", "export_csv"),
    "mentor": ("reports",),
    "learner": ("reports",),
    "analyst": ("sql",),  # read-only SQL over its tenant's analytics tables (api/analyst.py)
}

WRITE_KEY_PREFIX = "ssk_"


def new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TokenError(ValueError):
    pass


def key_id(secret: str) -> str:
    """Names the token key in each token's header (`kid`), so a token signed
    with a rotated-out key is told apart from a forged one. A truncated hash:
    it reveals nothing usable about a 256-bit secret."""
    return hashlib.sha256(b"skillstream:token-kid:" + secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    tenant_id: str
    tenant_name: str
    role: str
    user_id: str | None
    capabilities: frozenset[str] = field(default_factory=frozenset)


def issue_token(
    secret: str,
    *,
    tenant_id: str,
    tenant_name: str,
    role: str,
    user_id: str | None,
    ttl_s: int,
    now: float | None = None,
) -> str:
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    now = time.time() if now is None else now
    claims = {
        "tid": tenant_id,
        "tname": tenant_name,
        "role": role,
        "sub": user_id or "",
        "caps": list(ROLE_CAPABILITIES[role]),
        "iat": int(now),
        "exp": int(now + ttl_s),
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})


def _bad_signature(secret: str, token: str) -> str:
    kid = jwt.get_unverified_header(token).get("kid")
    if kid and kid != key_id(secret):
        return "token signed with a key no longer in use (the token key was rotated): sign in again"
    return "invalid token: signature verification failed"


def verify_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError(_bad_signature(secret, token)) from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    if claims.get("role") not in ROLES:
        raise TokenError("invalid token: unknown role")
    return Principal(
        tenant_id=claims["tid"],
        tenant_name=claims.get("tname", ""),
        role=claims["role"],
        user_id=claims.get("sub") or None,
        capabilities=frozenset(claims.get("caps", [])),
    )
