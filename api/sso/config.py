"""A tenant's identity provider: issuer and client, the sealed client
secret, the audience of its API access tokens, the e-mail domains that find
the tenant at sign-in, and how its claims map to a role (``ClaimMapping``).

Set by ``configure`` (the `tenant sso` operation, for the operator and for
the tenant's company admin alike), audited before it is stored. Nothing is
hand-entered beyond issuer and client: the endpoints come from the
provider's discovery document, checked here before anything is saved.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from api.audit.chain import audit
from api.sealing import Sealer
from api.security import ROLES
from api.sso.provider import Providers, ProviderUnavailable
from sinks.store import Store

# A tenant's provider speaks for that tenant only: never for every tenant.
MAPPABLE_ROLES = tuple(r for r in ROLES if r != "platform_admin")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class SsoError(ValueError):
    pass


class ClaimMapping(BaseModel):
    role_claim: str = Field("groups", description="Claim holding the person's groups or roles.")
    roles: dict[str, str] = Field(
        default_factory=dict,
        description="Claim value -> role (one of: " + ", ".join(MAPPABLE_ROLES) + "). "
        "Empty: nobody gets in (the no-access page).",
    )
    user_claim: str = Field(
        "sub", description="Claim whose value is the user id reports know the person by."
    )
    learners_claim: str | None = Field(
        None,
        description="Claim listing the learners a manager or mentor sees (stored as org "
        "links at sign-in); unset: the links already stored.",
    )


class SsoSettings(BaseModel):
    issuer: str = Field(description="The provider's issuer URL (https; http on loopback only).")
    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str | None = Field(
        None,
        max_length=4000,
        description="Sealed at rest; unset on a change: the stored one is kept.",
    )
    audience: str | None = Field(
        None, description="The `aud` of API access tokens (default: the client id)."
    )
    domains: list[str] = Field(
        default_factory=list, description="E-mail domains whose people sign in here."
    )
    mapping: ClaimMapping = Field(default_factory=ClaimMapping)


@dataclass(frozen=True)
class SsoConfig:
    tenant_id: str
    issuer: str
    client_id: str
    sealed_secret: str
    audience: str
    domains: tuple[str, ...]
    mapping: ClaimMapping

    def public(self) -> dict[str, Any]:
        """What may be shown back: everything but the secret."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret_set": bool(self.sealed_secret),
            "audience": self.audience,
            "domains": list(self.domains),
            "mapping": self.mapping.model_dump(),
        }


def check_issuer(issuer: str) -> str:
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError as exc:
        raise SsoError(f"issuer: {issuer!r} is not a URL ({exc})") from exc
    if parts.query or parts.fragment or not host:
        raise SsoError(f"issuer: {issuer!r} is not an issuer URL (https://host[/path])")
    if parts.scheme == "https":
        return issuer
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme == "http" and loopback:
        return issuer  # a provider on this machine (tests, the demo)
    raise SsoError(f"issuer: {issuer!r} must use https")


def check_mapping(mapping: ClaimMapping) -> None:
    for value, role in mapping.roles.items():
        if role not in MAPPABLE_ROLES:
            raise SsoError(
                f"mapping: {value!r} -> {role!r}: role must be one of {', '.join(MAPPABLE_ROLES)}"
            )
    for name in ("role_claim", "user_claim"):
        if not getattr(mapping, name).strip():
            raise SsoError(f"mapping.{name}: a claim name is required")


def check_domains(domains: list[str]) -> tuple[str, ...]:
    out = []
    for d in domains:
        d = d.strip().lower().lstrip("@")
        if not _DOMAIN.match(d):
            raise SsoError(f"domains: {d!r} is not a domain name")
        out.append(d)
    return tuple(sorted(set(out)))


class SsoRegistry:
    """Every tenant's provider configuration, cached for ``ttl_s`` (bearer
    tokens look it up on every request); a change made here clears it."""

    def __init__(self, store: Store, sealer: Sealer, ttl_s: float = 10.0) -> None:
        self.store = store
        self.sealer = sealer
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._all: dict[str, SsoConfig] = {}

    def _load(self) -> dict[str, SsoConfig]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                rows = self.store.query("SELECT * FROM tenant_sso FINAL WHERE removed = 0")
                self._all = {r["tenant_id"]: _config(r) for r in rows}
                self._at = time.monotonic()
            return self._all

    def forget(self) -> None:
        with self._lock:
            self._at = float("-inf")

    def all(self) -> list[SsoConfig]:
        return list(self._load().values())

    def get(self, tenant_id: str) -> SsoConfig | None:
        return self._load().get(tenant_id)

    def by_issuer(self, issuer: str) -> list[SsoConfig]:
        return [c for c in self._load().values() if c.issuer == issuer]

    def by_domain(self, domain: str) -> SsoConfig | None:
        return next((c for c in self._load().values() if domain.lower() in c.domains), None)

    def client_secret(self, cfg: SsoConfig) -> str:
        return self.sealer.open(cfg.sealed_secret)

    def save(self, cfg: SsoConfig) -> None:
        self.store.insert(
            "tenant_sso",
            [
                {
                    "tenant_id": cfg.tenant_id,
                    "issuer": cfg.issuer,
                    "client_id": cfg.client_id,
                    "client_secret": cfg.sealed_secret,
                    "audience": cfg.audience,
                    "domains": list(cfg.domains),
                    "mapping": cfg.mapping.model_dump_json(),
                    "removed": 0,
                    "version": datetime.now(UTC),
                }
            ],
        )
        self.forget()


def _config(row: dict[str, Any]) -> SsoConfig:
    return SsoConfig(
        tenant_id=row["tenant_id"],
        issuer=row["issuer"],
        client_id=row["client_id"],
        sealed_secret=row["client_secret"],
        audience=row["audience"],
        domains=tuple(row["domains"]),
        mapping=ClaimMapping(**json.loads(row["mapping"])),
    )


def _clash(registry: SsoRegistry, tenant_id: str, new: SsoConfig) -> str | None:
    """Another tenant that the same tokens or e-mail domains would reach."""
    for other in registry.all():
        if other.tenant_id == tenant_id:
            continue
        if other.issuer == new.issuer and {other.audience, other.client_id} & {
            new.audience,
            new.client_id,
        }:
            return "this issuer's client or audience is another tenant's: tokens would be ambiguous"
        if set(other.domains) & set(new.domains):
            return f"domains: {sorted(set(other.domains) & set(new.domains))} sign in elsewhere"
    return None


def configure(
    registry: SsoRegistry,
    providers: Providers,
    tenant_id: str,
    req: SsoSettings,
    *,
    actor_id: str,
    actor_role: str,
) -> SsoConfig:
    """Check, audit, store: the provider must answer discovery for exactly
    this issuer and support the code flow with PKCE (S256)."""
    issuer = check_issuer(req.issuer.strip())
    check_mapping(req.mapping)
    before = registry.get(tenant_id)
    if req.client_secret:
        sealed = registry.sealer.seal(req.client_secret)
    elif before is not None and before.client_id == req.client_id and before.issuer == issuer:
        sealed = before.sealed_secret
    else:
        raise SsoError("client_secret: required for a new issuer or client")
    cfg = SsoConfig(
        tenant_id,
        issuer,
        req.client_id,
        sealed,
        req.audience or req.client_id,
        check_domains(req.domains),
        req.mapping,
    )
    clash = _clash(registry, tenant_id, cfg)
    if clash:
        raise SsoError(clash)
    try:
        meta = providers.discover(issuer)
    except ProviderUnavailable as exc:  # the issuer given does not answer as one: the request's
        raise SsoError(f"issuer: {exc}") from exc
    if "S256" not in meta.get("code_challenge_methods_supported", ["S256"]):
        raise SsoError(f"issuer: {issuer} does not support PKCE with S256")
    if "code" not in meta.get("response_types_supported", []):
        raise SsoError(f"issuer: {issuer} does not support the authorization code flow")
    detail = {k: v for k, v in cfg.public().items() if k != "mapping"}
    detail["roles"] = cfg.mapping.roles
    who = {"tenant_id": tenant_id, "actor_id": actor_id, "actor_role": actor_role}
    audit(registry.store, **who, action="sso.configured", resource=f"tenant:{tenant_id}",
          outcome="ok", detail=detail)  # fmt: skip
    registry.save(cfg)
    return cfg
