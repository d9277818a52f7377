"""An identity provider seen from here: its discovery document and its keys
(JWKS), both cached, and JWT verification against them (joserfc).

What a token must pass (ID tokens and API access tokens alike): a signing
algorithm from ``ALGORITHMS`` (asymmetric only: ``none`` and every HMAC
algorithm are refused before any key is looked at, so a token "signed" with
the provider's public key as an HMAC secret never verifies), a signature by
a key the provider publishes now, ``iss`` equal to the configured issuer,
``aud`` naming us, and ``exp``/``nbf``/``iat`` within ``leeway_s``.

Keys are refetched when the cache is ``ttl_s`` old, or early when a token
names a key id we do not hold (the provider rotated), at most every
``min_refresh_s``: a key the provider removed is refused at the latest
``ttl_s`` after its removal. While the provider does not answer, the keys
already fetched stay in use (a provider that is down rotates nothing).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger("skillstream.sso")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class ProviderUnavailable(RuntimeError):
    """The provider did not answer, or answered nonsense: new sign-ins wait."""


class TokenRefused(ValueError):
    pass


@dataclass
class _Cached:
    metadata: dict[str, Any]
    keys: KeySet
    fetched_at: float
    keys_at: float


@dataclass
class Providers:
    """Every provider this process talks to, by issuer."""

    ttl_s: float = 300
    min_refresh_s: float = 10
    leeway_s: int = 60
    timeout_s: float = 5
    _cache: dict[str, _Cached] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _get(self, url: str) -> Any:
        try:
            r = httpx.get(url, timeout=self.timeout_s, follow_redirects=False)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"identity provider unreachable: {url}: {exc}") from exc

    def discover(self, issuer: str) -> dict[str, Any]:
        """The provider's OpenID discovery document, validated; its issuer
        must be exactly the one configured (a mix-up otherwise)."""
        doc = self._get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(doc, dict) or doc.get("issuer") != issuer:
            got = doc.get("issuer") if isinstance(doc, dict) else None
            raise ProviderUnavailable(f"discovery names issuer {got!r}, not {issuer!r}")
        try:
            OpenIDProviderMetadata(doc).validate()
        except ValueError as exc:
            raise ProviderUnavailable(f"discovery document of {issuer}: {exc}") from exc
        return doc

    def _keyset(self, metadata: dict[str, Any]) -> KeySet:
        try:
            return KeySet.import_key_set(self._get(metadata["jwks_uri"]))
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"bad JWKS from {metadata.get('jwks_uri')}: {exc}") from exc

    def _entry(self, issuer: str) -> _Cached:
        with self._lock:
            hit = self._cache.get(issuer)
        if hit and time.monotonic() - hit.fetched_at < self.ttl_s:
            return hit
        try:
            metadata = self.discover(issuer)
            keys = self._keyset(metadata)
        except ProviderUnavailable:
            if hit is None:
                raise
            # a provider that is down rotates nothing: its keys stay good, asked again soon
            log.warning("identity provider %s unreachable: its cached keys stay in use", issuer)
            hit.fetched_at = time.monotonic() - self.ttl_s + max(self.min_refresh_s, 1.0)
            return hit
        now = time.monotonic()
        entry = _Cached(metadata, keys, now, now)
        with self._lock:
            self._cache[issuer] = entry
        return entry

    def metadata(self, issuer: str) -> dict[str, Any]:
        return self._entry(issuer).metadata

    def _keys_for(self, issuer: str, kid: str | None) -> KeySet:
        entry = self._entry(issuer)
        known = kid is None or any(k.kid == kid for k in entry.keys.keys)
        if not known and time.monotonic() - entry.keys_at >= self.min_refresh_s:
            entry.keys = self._keyset(entry.metadata)  # the provider may have rotated
            entry.keys_at = time.monotonic()
        return entry.keys

    def verify(
        self, token: str, *, issuer: str, audience: str, nonce: str | None = None
    ) -> dict[str, Any]:
        """The token's claims once signature and claims pass; else ``TokenRefused``."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise TokenRefused(f"not a signed JWT: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRefused(f"signing algorithm {alg!r} not allowed (one of {ALGORITHMS})")
        keys = self._keys_for(issuer, header.get("kid"))
        if header.get("kid") and not any(k.kid == header["kid"] for k in keys.keys):
            raise TokenRefused(
                f"signed by key {header['kid']!r}, which the provider does not publish"
            )
        try:
            claims = jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": audience},
                "exp": {"essential": True},
                "sub": {"essential": True},
            }
            if nonce is not None:
                options["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(leeway=self.leeway_s, **options).validate(claims)
        except (JoseError, ValueError) as exc:
            raise TokenRefused(f"token refused: {exc}") from exc
        return claims

    @staticmethod
    def unverified(token: str) -> tuple[str | None, tuple[str, ...]]:
        """The ``iss`` and ``aud`` a JWT claims, before verification (joserfc's
        compact parser): only to pick which tenant's provider must verify it."""
        try:
            claims = json.loads(jws.extract_compact(token.encode()).payload)
        except (JoseError, ValueError, AttributeError):
            return None, ()
        if not isinstance(claims, dict):
            return None, ()
        iss, aud = claims.get("iss"), claims.get("aud")
        auds = tuple(
            a for a in ([aud] if isinstance(aud, str) else aud or []) if isinstance(a, str)
        )
        return (iss if isinstance(iss, str) else None), auds
