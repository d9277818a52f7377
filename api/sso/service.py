"""What the API holds for sign-in: the tenants' provider configurations,
the providers' cached keys, provisioning and sessions; and the principal a
provider's access token or a session stands for."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from api.audit.chain import audit
from api.sealing import Sealer, reseal_rows
from api.security import ROLE_CAPABILITIES, Principal
from api.sso import flow
from api.sso.config import SsoConfig, SsoRegistry
from api.sso.people import NoAccess, People, person
from api.sso.provider import Providers, TokenRefused
from api.sso.sessions import Session, Sessions
from api.tenants import TenantRegistry
from core.secrets import Secrets
from core.settings import Settings
from sinks.store import Store


class SignIn:
    def __init__(
        self, store: Store, settings: Settings, secrets: Secrets, tenants: TenantRegistry
    ) -> None:
        s = settings
        self.store = store
        self.tenants = tenants
        self.sealer = Sealer(secrets.sso_keys, "SSO secrets")
        self.registry = SsoRegistry(store, self.sealer)
        self.providers = Providers(
            ttl_s=s.oidc_jwks_ttl_s,
            min_refresh_s=s.oidc_jwks_min_refresh_s,
            leeway_s=s.oidc_leeway_s,
            timeout_s=s.oidc_timeout_s,
        )
        self.people = People(store)
        self.sessions = Sessions(
            store, self.sealer, secrets.token_secret, s.session_ttl_s, s.session_max_s
        )
        self._names: dict[str, str] = {}

    def tenant_name(self, tenant_id: str) -> str:
        if tenant_id not in self._names:
            t = self.tenants.by_id(tenant_id)
            self._names[tenant_id] = t.name if t else ""
        return self._names[tenant_id]

    def principal(self, tenant_id: str, role: str, user_id: str) -> Principal:
        return Principal(
            tenant_id,
            self.tenant_name(tenant_id),
            role,
            user_id,
            frozenset(ROLE_CAPABILITIES[role]),
        )

    def is_provider_token(self, token: str) -> bool:
        iss, _ = self.providers.unverified(token)
        return bool(iss) and bool(self.registry.by_issuer(iss))

    def verify_access_token(self, token: str) -> tuple[SsoConfig, dict]:
        """The tenant whose provider and audience the token verifies against
        (``TokenRefused`` when none does; ``ProviderUnavailable`` when the
        keys cannot be had)."""
        iss, auds = self.providers.unverified(token)
        configs = self.registry.by_issuer(iss or "")
        if not configs:
            raise TokenRefused("no tenant signs in with this issuer")
        # one tenant per (issuer, audience): `configure` refuses a second
        cfg = next((c for c in configs if c.audience in auds), None)
        if cfg is None:
            raise TokenRefused("token refused: its aud names no tenant's audience")
        return cfg, self.providers.verify(token, issuer=cfg.issuer, audience=cfg.audience)

    def access_token_principal(self, token: str) -> Principal:
        cfg, claims = self.verify_access_token(token)
        p = person(cfg, claims)  # NoAccess: a 403
        self.people.provision(p, cfg.issuer)
        return self.principal(p.tenant_id, p.role, p.user_id)

    def refresh_session(self, s: Session) -> Session | None:
        """A session past half its time, checked with the provider through its
        refresh token (when it gave one): the role mapped again from fresh
        claims; None (the session ends, audited) when the provider refuses or
        the person no longer maps to the same user with a role."""
        cfg = self.registry.get(s.tenant_id)
        refresh_token = self.sealer.open(s.refresh_token)
        if cfg is None or not refresh_token:
            return s if cfg is not None else self._ended(s, "sign-in is no longer set up")
        try:
            token = flow.refresh(
                cfg, self.providers, self.registry.client_secret(cfg), refresh_token
            )
            role = s.role
            if token.get("id_token"):
                claims = self.providers.verify(
                    token["id_token"], issuer=cfg.issuer, audience=cfg.client_id
                )
                p = person(cfg, claims)
                if p.user_id != s.user_id:
                    return self._ended(s, "the provider now names another user")
                self.people.provision(p, cfg.issuer)
                role = p.role
        except (flow.SignInFailed, TokenRefused, NoAccess) as exc:
            return self._ended(s, str(exc))
        return replace(
            s,
            role=role,
            id_token=self.sealer.seal(token["id_token"]) if token.get("id_token") else s.id_token,
            refresh_token=self.sealer.seal(token.get("refresh_token") or refresh_token),
        )

    def _ended(self, s: Session, reason: str) -> None:
        audit(self.store, principal=s, action="session.ended", resource=f"user:{s.user_id}",
              outcome="ok", detail={"reason": reason})  # fmt: skip
        return None

    def session_principal(self, s: Session) -> Principal:
        return self.principal(s.tenant_id, s.role, s.user_id)

    def reseal(self) -> int:
        """Client secrets sealed under an older SSO key move to the newest."""
        rows = self.store.query("SELECT * FROM tenant_sso FINAL")
        time.sleep(0.002)  # the version (µs) must be newer than any row's

        def bump(row: dict) -> None:
            row["version"] = datetime.now(UTC)

        changed = reseal_rows(rows, "client_secret", self.sealer, bump)
        if changed:
            self.store.insert("tenant_sso", changed)
        return len(changed)
