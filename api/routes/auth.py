"""Sign-in with the customer's identity provider (docs/sign-in.md): finding
the company from a hint, the redirect to its provider and back, the session,
sign-out; and the company admin's own door to the provider configuration
(the operator's is `skillstream tenant sso`, the same ``configure``)."""

from __future__ import annotations

from html import escape
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.audit.chain import audit
from api.deps import Ctx, CurrentPrincipal
from api.routes.reports import ERRORS, deny
from api.sso import flow
from api.sso.config import SsoConfig, SsoError, SsoSettings, configure
from api.sso.people import NoAccess, person
from api.sso.provider import ProviderUnavailable, TokenRefused
from api.sso.sessions import COOKIE, CSRF_HEADER

router = APIRouter(tags=["sign-in"])


def page(title: str, message: str, code: int, tenant: str | None = None) -> HTMLResponse:
    """A plain page of ours for what the dashboard cannot show (before a session exists)."""
    again = f'<a href="/?tenant={quote(tenant)}">Sign in again</a>' if tenant else ""
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>SkillStream · {escape(title)}</title><link rel="stylesheet" href="/static/app.css">
</head><body><main class="card notice" id="signin-notice" data-code="{code}">
<h1>{escape(title)}</h1><p>{escape(message)}</p><p>{again}</p></main></body></html>"""
    return HTMLResponse(body, status_code=code, headers={"Cache-Control": "no-store"})


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _base(ctx: Any, request: Request) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


def _find(ctx: Any, hint: str) -> tuple[str, SsoConfig] | None:
    """A tenant from a sign-in hint: a work e-mail (its domain), a domain, or
    the tenant's name (the slug in `/?tenant=NAME`)."""
    hint = hint.strip()
    domain = hint.rpartition("@")[2].lower()
    cfg = ctx.sso.registry.by_domain(domain) if "." in domain else None
    tenant = ctx.tenants.by_id(cfg.tenant_id) if cfg else ctx.tenants.by_name(hint)
    if tenant is None:
        return None
    cfg = cfg or ctx.sso.registry.get(tenant.tenant_id)
    return (tenant.name, cfg) if cfg else None


@router.get("/v1/auth/providers")
async def find_provider(
    ctx: Ctx, hint: Annotated[str, Query(min_length=1, max_length=320)]
) -> dict[str, str]:
    """Which company a sign-in hint (work e-mail, domain or tenant name)
    belongs to, and where its sign-in starts."""
    found = await run_in_threadpool(_find, ctx, hint)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no company signs in with that hint")
    name, _ = found
    return {"tenant": name, "label": name, "login_url": f"/v1/auth/login?tenant={quote(name)}"}


@router.get("/v1/auth/login", include_in_schema=False)
async def login(ctx: Ctx, request: Request, tenant: str) -> Response:
    found = await run_in_threadpool(_find, ctx, tenant)
    if found is None:
        return page("Sign-in", f"No company named {tenant!r} signs in here.", 404)
    _, cfg = found
    redirect_uri = _base(ctx, request) + "/v1/auth/callback"
    try:
        secret = ctx.sso.registry.client_secret(cfg)
        url, sealed = await run_in_threadpool(
            flow.start, cfg, ctx.sso.providers, secret, redirect_uri, ctx.sso.sealer
        )
    except ProviderUnavailable:
        return page(
            "Sign-in unavailable",
            "Your company's sign-in service does not answer. "
            "Try again in a few minutes; people already signed in are not affected.",
            503,
            tenant,
        )
    r = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    r.set_cookie(
        flow.FLOW_COOKIE,
        sealed,
        max_age=flow.FLOW_TTL_S,
        path="/v1/auth/callback",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return r


UNAVAILABLE = "Your company's sign-in service does not answer. Try again in a few minutes."


def _verified(ctx: Any, request: Request) -> tuple[SsoConfig, dict, dict] | Response:
    """The provider's way back, checked: the tenant's configuration, the ID
    token's claims and the token response; else the page to show."""
    sso = ctx.sso
    try:
        state = flow.read_flow(sso.sealer, request.cookies.get(flow.FLOW_COOKIE))
    except flow.SignInFailed as exc:
        return page("Sign-in failed", str(exc), 400)
    cfg = sso.registry.get(state.tenant_id)
    if cfg is None:
        return page("Sign-in", "Sign-in is no longer set up for your company.", 400)
    name = sso.tenant_name(state.tenant_id)
    callback = state.redirect_uri + "?" + request.url.query
    secret = sso.registry.client_secret(cfg)
    try:
        claims, token = flow.finish(cfg, sso.providers, secret, state, callback)
    except (flow.SignInFailed, TokenRefused) as exc:
        return page("Sign-in failed", str(exc), 400, name)
    except ProviderUnavailable:
        return page("Sign-in unavailable", UNAVAILABLE, 503, name)
    return cfg, claims, token


def _no_access(ctx: Any, cfg: SsoConfig, claims: dict, reason: str) -> Response:
    name = ctx.sso.tenant_name(cfg.tenant_id)
    audit(
        ctx.store,
        tenant_id=cfg.tenant_id,
        actor_id=str(claims.get("sub", "")),
        actor_role="none",
        action="sign_in.denied",
        resource=f"tenant:{cfg.tenant_id}",
        outcome="denied",
        detail={"reason": reason},
    )
    message = (
        f"You signed in to {name}, but your account has no role in SkillStream. "
        "Ask your company's SkillStream administrator for access."
    )
    return page("No access", message, 403, name)


def _callback(ctx: Any, request: Request) -> str | Response:
    """The new session's cookie value, or the page to show."""
    got = _verified(ctx, request)
    if isinstance(got, Response):
        return got
    cfg, claims, token = got
    try:
        who = person(cfg, claims)
    except NoAccess as exc:
        return _no_access(ctx, cfg, claims, str(exc))
    ctx.sso.people.provision(who, cfg.issuer)
    audit(ctx.store, principal=who, action="sign_in", resource=f"user:{who.user_id}",
          outcome="ok", detail={"issuer": cfg.issuer})  # fmt: skip
    cookie, _ = ctx.sso.sessions.create(who, token["id_token"], token.get("refresh_token"))
    return cookie


@router.get("/v1/auth/callback", include_in_schema=False)
async def callback(ctx: Ctx, request: Request) -> Response:
    out = await run_in_threadpool(_callback, ctx, request)
    if isinstance(out, Response):
        out.delete_cookie(flow.FLOW_COOKIE, path="/v1/auth/callback")
        return out
    r = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    r.delete_cookie(flow.FLOW_COOKIE, path="/v1/auth/callback")
    r.set_cookie(
        COOKIE,
        out,
        max_age=ctx.settings.session_max_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return r


@router.get("/v1/auth/session")
async def session_info(ctx: Ctx, request: Request) -> dict[str, Any]:
    """The browser's session: who, until when, and the CSRF token its
    state-changing calls must send in `X-CSRF-Token`."""
    cookie = request.cookies.get(COOKIE)
    get = ctx.sso.sessions.get
    s = await run_in_threadpool(get, cookie, ctx.sso.refresh_session) if cookie else None
    if s is None or cookie is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in")
    return {
        "tenant_id": s.tenant_id,
        "tenant_name": ctx.sso.tenant_name(s.tenant_id),
        "role": s.role,
        "user_id": s.user_id,
        "expires_at": s.expires_at.isoformat(),
        "csrf_token": ctx.sso.sessions.csrf_token(cookie),
        "csrf_header": CSRF_HEADER,
    }


@router.post("/v1/auth/logout")
async def logout(ctx: Ctx, request: Request, principal: CurrentPrincipal) -> Response:
    """Ends the session here (a cookie call: CSRF-checked like any other) and
    names the provider's sign-out page when it has one."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "sign-out ends a browser session")
    s = await run_in_threadpool(ctx.sso.sessions.end, cookie)
    end_url = None
    if s is not None:
        audit(
            ctx.store,
            principal=principal,
            action="sign_out",
            resource=f"user:{s.user_id}",
            outcome="ok",
            detail={},
        )
        cfg = ctx.sso.registry.get(s.tenant_id)
        if cfg is not None:
            end_url = await run_in_threadpool(
                flow.end_session_url,
                ctx.sso.providers,
                cfg,
                ctx.sso.sessions.id_token(s),
                _base(ctx, request) + "/",
            )
    r = JSONResponse({"signed_out": True, "end_session_url": end_url})
    r.delete_cookie(COOKIE, path="/")
    return r


# --- the company admin's door to the provider configuration -------------------------
def _own_tenant(ctx: Any, principal: Any, action: str) -> str:
    if principal.role != "company_admin":
        raise deny(ctx, principal, action, "sign-in is set up by company_admin", {})
    return principal.tenant_id


@router.get("/v1/sso", responses=ERRORS, tags=["sign-in"])
async def get_sso(ctx: Ctx, principal: CurrentPrincipal) -> dict[str, Any]:
    """The tenant's identity provider (company_admin), without its secret."""
    tid = _own_tenant(ctx, principal, "sso.read")
    cfg = await run_in_threadpool(ctx.sso.registry.get, tid)
    return {"configured": cfg is not None, **(cfg.public() if cfg else {})}


@router.put("/v1/sso", responses=ERRORS, tags=["sign-in"])
async def put_sso(body: SsoSettings, ctx: Ctx, principal: CurrentPrincipal) -> dict[str, Any]:
    """Set the tenant's identity provider (company_admin): discovery checked,
    the secret sealed, audited. The same operation as `skillstream tenant sso`."""
    tid = _own_tenant(ctx, principal, "sso.configure")
    try:
        cfg = await run_in_threadpool(
            lambda: configure(
                ctx.sso.registry,
                ctx.sso.providers,
                tid,
                body,
                actor_id=principal.user_id or "",
                actor_role=principal.role,
            )
        )
    except SsoError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return {"configured": True, **cfg.public()}
