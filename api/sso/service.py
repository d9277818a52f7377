"""What the API holds for sign-in: the tenants' provider configurations,
the providers' cached keys, provisioning and sessions; and the principal a
provider's access token or a session stands for."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from api.sealing import Sealer, reseal_rows
from api.security import ROLE_CAPABILITIES, Principal
from api.sso.config import SsoConfig, SsoRegistry
from api.sso.people import People, person
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
