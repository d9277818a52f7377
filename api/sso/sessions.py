"""Browser sessions after a sign-in.

The cookie holds 32 random bytes; the store keeps only their SHA-256, so
whoever reads the table cannot present a session. The cookie is HttpOnly,
SameSite=Lax (the provider's redirect back to us is a top-level navigation)
and Secure when the page is served over TLS. A call that changes state with
the cookie must also carry ``X-CSRF-Token``: an HMAC of the cookie value
that only a page of ours can read (from ``GET /v1/auth/session``), and an
``Origin``, when the browser sends one, that is ours.

A session ends ``ttl_s`` after its last refresh and at the latest ``max_s``
after the sign-in; a request in its second half refreshes it. Sign-out ends
it here at once; other API processes see that within ``CACHE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from api.sealing import Sealer
from api.sso.people import Person
from api.sso.provider import ProviderUnavailable
from sinks.store import Store

COOKIE = "skillstream_session"
CSRF_HEADER = "X-CSRF-Token"
CACHE_S = 5.0


@dataclass(frozen=True)
class Session:
    session_hash: str
    tenant_id: str
    user_id: str
    role: str
    id_token: str  # sealed
    refresh_token: str  # sealed
    created_at: datetime
    expires_at: datetime
    ended: bool = False

    def row(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ended"] = int(self.ended)
        d["version"] = datetime.now(UTC)
        return d


Refresher = Callable[[Session], "Session | None"]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Sessions:
    def __init__(self, store: Store, sealer: Sealer, csrf_secret: str, ttl_s: int, max_s: int):
        self.store = store
        self.sealer = sealer
        self._csrf_key = hashlib.sha256(b"skillstream:csrf:" + csrf_secret.encode()).digest()
        self.ttl = timedelta(seconds=ttl_s)
        self.max = timedelta(seconds=max_s)
        self._cache: dict[str, tuple[float, Session | None]] = {}
        self._lock = threading.Lock()

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self._csrf_key, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(cookie), presented or "")

    def create(
        self, person: Person, id_token: str, refresh_token: str | None
    ) -> tuple[str, Session]:
        cookie = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        s = Session(
            _hash(cookie),
            person.tenant_id,
            person.user_id,
            person.role,
            self.sealer.seal(id_token),
            self.sealer.seal(refresh_token or ""),
            now,
            min(now + self.ttl, now + self.max),
        )
        self._write(s)
        return cookie, s

    def _write(self, s: Session) -> None:
        self.store.insert("sso_sessions", [s.row()])
        with self._lock:
            self._cache[s.session_hash] = (time.monotonic(), s)

    def _read(self, h: str) -> Session | None:
        with self._lock:
            hit = self._cache.get(h)
        if hit and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        rows = self.store.query(
            "SELECT * EXCEPT version FROM sso_sessions FINAL WHERE session_hash = {h:String}",
            {"h": h},
        )
        s = None
        if rows:
            r = rows[0]
            times = {k: _utc(r[k]) for k in ("created_at", "expires_at")}
            s = Session(**{**r, **times, "ended": bool(r["ended"])})
        with self._lock:
            self._cache[h] = (time.monotonic(), s)
        return s

    def get(self, cookie: str, refresher: Refresher | None = None) -> Session | None:
        """The live session, refreshed when past half its time; None when
        unknown, ended or expired. ``refresher`` checks the session with the
        provider first: None from it ends the session; a provider that does
        not answer leaves it as it is, to run out at its time."""
        s = self._read(_hash(cookie))
        now = datetime.now(UTC)
        if s is None or s.ended or _utc(s.expires_at) <= now:
            return None
        if _utc(s.expires_at) - now >= self.ttl / 2:
            return s
        if refresher is not None:
            try:
                checked = refresher(s)
            except ProviderUnavailable:
                return s
            if checked is None:
                self._write(replace(s, ended=True))
                return None
            s = checked
        s = replace(s, expires_at=min(now + self.ttl, _utc(s.created_at) + self.max))
        self._write(s)
        return s

    def end(self, cookie: str) -> Session | None:
        s = self._read(_hash(cookie))
        if s is None or s.ended:
            return None
        self._write(replace(s, ended=True))
        return s

    def id_token(self, s: Session) -> str:
        return self.sealer.open(s.id_token)


def _utc(d: datetime | str) -> datetime:
    """A stored time as the store returns it (the embedded engine: text)."""
    if isinstance(d, str):
        d = datetime.fromisoformat(d)
    return d if d.tzinfo else d.replace(tzinfo=UTC)
