"""The browser's sign-in: OpenID Connect authorization code flow with PKCE
(S256), ``state`` and ``nonce``, through Authlib's OAuth 2 client; the ID
token verified by ``Providers.verify`` (signature, iss, aud, exp, nonce).

Between the redirect to the provider and its way back, what the flow must
remember (tenant, state, nonce, code verifier) travels in a short-lived
cookie sealed with the SSO key (Fernet): the browser holds it but cannot
read or change it, and any API process can finish the flow. The tenant of
the session is the one in that sealed cookie, and the ID token must verify
against that tenant's provider and client: a provider configured for tenant
A can never yield a session for tenant B.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from requests import RequestException

from api.sealing import Sealer, SealError
from api.sso.config import SsoConfig
from api.sso.provider import Providers, ProviderUnavailable

FLOW_COOKIE = "skillstream_signin"
FLOW_TTL_S = 600
SCOPE = "openid email profile groups"


class SignInFailed(ValueError):
    """The way back from the provider did not check out: sign in again."""


@dataclass(frozen=True)
class Flow:
    tenant_id: str
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    started: float


def _client(cfg: SsoConfig, secret: str, redirect_uri: str, timeout_s: float) -> OAuth2Session:
    s = OAuth2Session(
        cfg.client_id,
        secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    s.default_timeout = timeout_s
    return s


def start(
    cfg: SsoConfig, providers: Providers, secret: str, redirect_uri: str, sealer: Sealer
) -> tuple[str, str]:
    """The provider's authorization URL and the sealed flow cookie. Discovery
    is asked afresh: a provider that is down gets a clear page here, not a
    browser error at its address."""
    meta = providers.discover(cfg.issuer)
    flow = Flow(
        cfg.tenant_id,
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(48),
        redirect_uri,
        time.time(),
    )
    client = _client(cfg, secret, redirect_uri, providers.timeout_s)
    client.scope = scope_for(meta)
    url, _ = client.create_authorization_url(
        meta["authorization_endpoint"],
        state=flow.state,
        code_verifier=flow.verifier,
        nonce=flow.nonce,
    )
    return url, sealer.seal(json.dumps(asdict(flow)))


def read_flow(sealer: Sealer, cookie: str | None) -> Flow:
    if not cookie:
        raise SignInFailed("no sign-in in progress in this browser (cookies blocked, or expired)")
    try:
        flow = Flow(**json.loads(sealer.open(cookie)))
    except (SealError, ValueError, TypeError) as exc:
        raise SignInFailed("the sign-in cookie is not ours") from exc
    if time.time() - flow.started > FLOW_TTL_S:
        raise SignInFailed("the sign-in took longer than 10 minutes: start again")
    return flow


def finish(
    cfg: SsoConfig, providers: Providers, secret: str, flow: Flow, callback_url: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verified ID token's claims and the token response, from the
    provider's redirect back to ``callback_url``."""
    query = parse_qs(urlsplit(callback_url).query)
    if "error" in query:
        why = query.get("error_description", query["error"])[0]
        raise SignInFailed(f"the identity provider refused the sign-in: {why}")
    if query.get("iss", [cfg.issuer])[0] != cfg.issuer:  # RFC 9207: a mixed-up provider
        raise SignInFailed("the answer came from another identity provider")
    meta = providers.metadata(cfg.issuer)
    client = _client(cfg, secret, flow.redirect_uri, providers.timeout_s)
    try:
        token = client.fetch_token(
            meta["token_endpoint"],
            authorization_response=callback_url,
            state=flow.state,
            code_verifier=flow.verifier,
        )
    except AuthlibBaseError as exc:
        raise SignInFailed(f"sign-in refused: {exc.description or exc.error}") from exc
    except RequestException as exc:
        raise ProviderUnavailable(f"identity provider unreachable: {exc}") from exc
    if "id_token" not in token:
        raise SignInFailed("the identity provider sent no ID token")
    claims = providers.verify(
        token["id_token"], issuer=cfg.issuer, audience=cfg.client_id, nonce=flow.nonce
    )
    return claims, dict(token)


def refresh(
    cfg: SsoConfig, providers: Providers, secret: str, refresh_token: str
) -> dict[str, Any]:
    """A session's refresh at the provider: the new token response; the
    provider refusing (the person disabled, the grant revoked) is
    ``SignInFailed``, the provider not answering ``ProviderUnavailable``."""
    meta = providers.metadata(cfg.issuer)
    client = OAuth2Session(cfg.client_id, secret, token_endpoint_auth_method="client_secret_basic")
    client.default_timeout = providers.timeout_s
    try:
        return dict(client.refresh_token(meta["token_endpoint"], refresh_token=refresh_token))
    except AuthlibBaseError as exc:
        raise SignInFailed(f"the provider refused the refresh: {exc.error}") from exc
    except RequestException as exc:
        raise ProviderUnavailable(f"identity provider unreachable: {exc}") from exc


def scope_for(meta: dict[str, Any]) -> str:
    """``offline_access`` too where the provider offers it: a refresh token
    lets a session be checked with the provider as it is refreshed."""
    offered = meta.get("scopes_supported") or []
    return SCOPE + (" offline_access" if "offline_access" in offered else "")


def end_session_url(providers: Providers, cfg: SsoConfig, id_token: str, after: str) -> str | None:
    """The provider's RP-initiated logout, when it offers one."""
    try:
        endpoint = providers.metadata(cfg.issuer).get("end_session_endpoint")
    except ProviderUnavailable:
        return None  # our session is over anyway
    if not endpoint:
        return None
    from authlib.common.urls import add_params_to_uri

    params = [
        ("id_token_hint", id_token),
        ("post_logout_redirect_uri", after),
        ("client_id", cfg.client_id),
    ]
    return add_params_to_uri(endpoint, params)
