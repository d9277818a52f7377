"""FastAPI dependencies: the app context, and who is calling."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import AppContext
from api.security import Principal, TokenError, verify_token
from api.sso.people import NoAccess
from api.sso.provider import ProviderUnavailable, TokenRefused
from api.sso.sessions import COOKIE as SESSION_COOKIE
from api.sso.sessions import CSRF_HEADER

bearer = HTTPBearer(auto_error=False)


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require_admin(ctx: Ctx, creds: Credentials) -> None:
    """Local operator calls (the CLI): bearer = the admin secret of the run dir."""
    if creds is None or not hmac.compare_digest(
        creds.credentials.encode(), ctx.secrets.admin_secret.encode()
    ):
        raise _unauthorized("admin secret required")


def _bearer_principal(ctx: AppContext, token: str) -> Principal:
    """Our own signed token, or an access token from a tenant's identity
    provider (verified against its keys: api/sso/provider.py)."""
    if not ctx.sso.is_provider_token(token):
        try:
            return verify_token(ctx.secrets.token_secret, token)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from exc
    try:
        return ctx.sso.access_token_principal(token)
    except TokenRefused as exc:
        raise _unauthorized(str(exc)) from exc
    except NoAccess as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except ProviderUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cookie_principal(ctx: AppContext, request: Request, cookie: str) -> Principal:
    """A browser session; a state-changing call with it must also carry the
    session's CSRF token and, when the browser names one, our own Origin."""
    session = ctx.sso.sessions.get(cookie, ctx.sso.refresh_session)
    if session is None:
        raise _unauthorized("session expired or signed out: sign in again")
    if request.method not in _SAFE_METHODS:
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        presented = request.headers.get(CSRF_HEADER)
        if (origin and origin != own) or not ctx.sso.sessions.csrf_ok(cookie, presented):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"CSRF check failed: send {CSRF_HEADER}")
    return ctx.sso.session_principal(session)


def current_principal(ctx: Ctx, request: Request, creds: Credentials) -> Principal:
    if creds is not None:
        return _bearer_principal(ctx, creds.credentials)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return _cookie_principal(ctx, request, cookie)
    raise _unauthorized("missing bearer token (or sign in)")


# Headers a proxy adds: behind one, the peer address is the proxy's, not the caller's.
_FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "[::1]"})


def _is_loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The Host header without its port: `[::1]:80` -> `[::1]`, `a:80` -> `a`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0]


def require_loopback_client(request: Request) -> None:
    """Demo endpoints mint tokens for any role, platform_admin included: only
    a client on this machine, talking to it directly, gets them. Refused: a
    peer that is not loopback; any forwarding header (a reverse proxy on this
    host would make every remote caller look local); a Host that is not a
    loopback name (DNS rebinding: a web page whose domain now resolves to
    127.0.0.1 would otherwise read the tokens from the user's browser)."""
    peer = request.client.host if request.client else None
    host = _host_name(request.headers.get("host", ""))
    local_host = host in _LOOPBACK_NAMES or _is_loopback_ip(host)
    forwarded = any(h in request.headers for h in _FORWARDING_HEADERS)
    if not _is_loopback_ip(peer) or forwarded or not local_host:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "demo tokens are for loopback clients only")


Admin = Depends(require_admin)
LoopbackOnly = Depends(require_loopback_client)
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
