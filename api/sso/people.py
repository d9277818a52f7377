"""Who a signed-in person is: the provider's claims mapped to a role and a
user id by the tenant's ``ClaimMapping``, provisioned (audited) the first
time they are seen. No mapped role: no access, whatever else they carry."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.audit.chain import audit
from api.reports.org import Link, OrgRegistry
from api.sso.config import MAPPABLE_ROLES, SsoConfig
from sinks.store import Store

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


class NoAccess(PermissionError):
    """Signed in at the provider, but nothing maps the person to a role here."""


@dataclass(frozen=True)
class Person:
    tenant_id: str
    user_id: str
    role: str
    subject: str
    learners: tuple[str, ...] = ()


def _values(claim: Any) -> list[str]:
    if isinstance(claim, str):
        return [claim]
    if isinstance(claim, list):
        return [v for v in claim if isinstance(v, str)]
    return []


def person(cfg: SsoConfig, claims: dict[str, Any]) -> Person:
    """The role the mapping gives (the most privileged of several); the user id
    from ``user_claim``. Raises ``NoAccess`` naming what was missing."""
    m = cfg.mapping
    mapped = {m.roles[v] for v in _values(claims.get(m.role_claim)) if v in m.roles}
    if not mapped:
        raise NoAccess(f"no role is mapped for this person's {m.role_claim!r} claim")
    role = next(r for r in MAPPABLE_ROLES if r in mapped)
    user_id = claims.get(m.user_claim)
    if not isinstance(user_id, str) or not _ID.match(user_id):
        raise NoAccess(f"the {m.user_claim!r} claim is not a usable user id")
    learners: tuple[str, ...] = ()
    if m.learners_claim and role in ("manager", "mentor"):
        learners = tuple(v for v in _values(claims.get(m.learners_claim)) if _ID.match(v))
    return Person(cfg.tenant_id, user_id, role, str(claims["sub"]), learners)


class People:
    """Provisioning: the first sign-in of a person (or a new role for them)
    writes an audited row; later ones cost no write."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def _stored_role(self, p: Person) -> str | None:
        rows = self.store.query(
            "SELECT role FROM sso_people FINAL"
            " WHERE tenant_id = {t:String} AND user_id = {u:String}",
            {"t": p.tenant_id, "u": p.user_id},
        )
        return rows[0]["role"] if rows else None

    def provision(self, p: Person, issuer: str) -> bool:
        """True when this sign-in provisioned the person or changed their role."""
        key = (p.tenant_id, p.user_id, p.role)
        with self._lock:
            if key in self._known:
                return False
        before = self._stored_role(p)
        changed = before != p.role
        if changed:
            action = "user.provisioned" if before is None else "user.role_changed"
            now = datetime.now(UTC)
            audit(
                self.store,
                tenant_id=p.tenant_id,
                actor_id=p.user_id,
                actor_role=p.role,
                action=action,
                resource=f"user:{p.user_id}",
                outcome="ok",
                detail={
                    "issuer": issuer,
                    "subject": p.subject,
                    "role": p.role,
                    "previous_role": before,
                },
            )
            self.store.insert(
                "sso_people",
                [
                    {
                        "tenant_id": p.tenant_id,
                        "user_id": p.user_id,
                        "issuer": issuer,
                        "subject": p.subject,
                        "role": p.role,
                        "provisioned_at": now,
                        "version": now,
                    }
                ],
            )
        self._sync_learners(p)
        with self._lock:
            self._known.add(key)
        return changed

    def _sync_learners(self, p: Person) -> None:
        """A manager's or mentor's learners from the claim, added as org links
        (audited by the org registry); links stored otherwise stay."""
        if not p.learners:
            return
        org = OrgRegistry(self.store)
        have = {lk.object_id for lk in org.links(p.tenant_id, p.role, p.user_id)}
        new = [Link(p.tenant_id, p.role, p.user_id, x) for x in p.learners if x not in have]
        if new:
            org.link_many(new, actor=p.user_id, actor_role=p.role)
