"""FastAPI dependencies: the app context, and who is calling."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import AppContext
from api.security import Principal, TokenError, verify_token

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


def current_principal(ctx: Ctx, creds: Credentials) -> Principal:
    if creds is None:
        raise _unauthorized("missing bearer token")
    try:
        return verify_token(ctx.secrets.token_secret, creds.credentials)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from exc


Admin = Depends(require_admin)
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
