"""The demo's identity provider: `skillstream up --demo` signs people in the
way a customer's company does, through OpenID Connect, with nothing to
install (Python and Authlib's authorization server; the tests use npm's
oidc-provider instead, tests/support/oidc.py).

Demo only, loopback only: its login page lists the demo company's people
(a company admin, a manager, a mentor, a program owner, a learner, and a
visitor nobody gave a role) and signs in whoever is picked, no password.
Authorization code flow with PKCE (S256, required) and nonce; ID tokens
signed RS256 by a key made at start; discovery, JWKS and RP-initiated
sign-out as a real provider offers them.

Configuration: the JSON file named by ``SKILLSTREAM_DEMO_IDP`` (written by
``ops/stack.py``): port, issuer, client id and secret, redirect URIs, and
the demo tenant whose people it lists.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet, RSAKey

SCOPES = "openid email profile groups"
IDP_COOKIE = "demo_idp_session"


def demo_people(tenant: str) -> dict[str, dict[str, Any]]:
    """The demo company's people as its directory knows them: the groups
    the demo's mapping turns into roles, and the user id reports use."""
    people = {
        "alex": ("Alex Admin", ["skillstream-admins"], f"{tenant}-admin"),
        "morgan": ("Morgan Manager", ["skillstream-managers"], f"{tenant}-mgr-000"),
        "mei": ("Mei Mentor", ["skillstream-mentors"], f"{tenant}-mentor-000"),
        "owen": ("Owen Owner", ["skillstream-program-owners"], f"{tenant}-owner-0"),
        "lee": ("Lee Learner", ["skillstream-learners"], f"{tenant}-usr-00000"),
        "val": ("Val Visitor", ["sales"], f"{tenant}-visitor"),
    }
    return {
        login: {
            "name": name,
            "groups": groups,
            "employee_id": uid,
            "email": f"{login}@{tenant}.example",
            "email_verified": True,
        }
        for login, (name, groups, uid) in people.items()
    }


DEMO_ROLES = {
    "skillstream-admins": "company_admin",
    "skillstream-managers": "manager",
    "skillstream-mentors": "mentor",
    "skillstream-program-owners": "program_owner",
    "skillstream-learners": "learner",
}


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in SCOPES.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None

    def is_expired(self) -> bool:
        return time.time() - self.auth_time > 60


class Provider:
    """The authorization server and what it keeps in memory."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.issuer: str = config["issuer"]
        self.people = demo_people(config["tenant"])
        self.client = Client(
            config["client_id"],
            config["client_secret"],
            config["redirect_uris"],
            config["post_logout_redirect_uris"],
        )
        self.key = RSAKey.generate_key(2048, parameters={"kid": generate_token(8)}, private=True)
        self.codes: dict[str, Code] = {}
        self.sessions: dict[str, str] = {}  # our cookie -> login
        self.server = self._server()

    def _server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> Client | None:
                return provider.client if client_id == provider.client.client_id else None

            def save_token(self, token: dict, request: OAuth2Request) -> None:
                return None  # access tokens are for our own userinfo: none is served

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request  # built by ``Provider.request`` from the web request

            def handle_response(self, status: int, body: Any, headers: list) -> tuple:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                p = request.payload
                provider.codes[code] = Code(
                    code,
                    p.client_id,
                    p.redirect_uri,
                    p.scope,
                    request.user,
                    p.data.get("nonce"),
                    p.data.get("code_challenge"),
                    p.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                c = provider.codes.get(code)
                ok = c and c.client_id == client.client_id and not c.is_expired()
                return c if ok else None

            def delete_authorization_code(self, code: Code) -> None:
                provider.codes.pop(code.code, None)

            def authenticate_user(self, code: Code) -> str:
                return code.user

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def get_jwt_config(self, grant: Any = None, client: Any = None) -> dict:
                return {
                    "key": provider.key,
                    "alg": "RS256",
                    "iss": provider.issuer,
                    "exp": 600,
                    "kid": provider.key.kid,
                }

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_claims(self, client: Client) -> dict:
                return {
                    "iss": provider.issuer,
                    "aud": [client.client_id],
                    "exp": int(time.time()) + 600,
                }

            def generate_user_info(self, user: str, scope: str) -> UserInfo:
                return UserInfo(sub=user, **provider.people.get(user, {}))

        server = Server(scopes_supported=SCOPES.split())
        opaque = BearerTokenGenerator(lambda *_args, **_kw: generate_token(42))
        server.register_token_generator("default", opaque)
        server.register_grant(
            CodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)]
        )
        return server

    def discovery(self) -> dict[str, Any]:
        i = self.issuer
        return {
            "issuer": i,
            "authorization_endpoint": f"{i}/authorize",
            "token_endpoint": f"{i}/token",
            "jwks_uri": f"{i}/jwks",
            "end_session_endpoint": f"{i}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": SCOPES.split(),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "grant_types_supported": ["authorization_code"],
            "claims_supported": ["sub", "name", "email", "groups", "employee_id"],
        }

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def request(self, method: str, url: str, headers: Any, data: dict) -> OAuth2Request:
        return WebRequest(method, url, headers, data)


class WebRequest(OAuth2Request):
    """A web request as Authlib's grants read it: query or form fields, and
    the headers case-insensitively (Starlette's)."""

    def __init__(self, method: str, url: str, headers: Any, data: dict[str, str]) -> None:
        super().__init__(method, url, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def args(self) -> dict[str, str]:
        return self._data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self._data if self.method == "POST" else {}


def login_page(provider: Provider, query: str) -> str:
    rows = "".join(
        f'<li><form method="post" action="/login?{escape(query)}">'
        f'<input type="hidden" name="login" value="{escape(login)}">'
        f'<button type="submit" id="as-{escape(login)}">{escape(p["name"])}</button> '
        f"<span>{escape(p['email'])} · {escape(', '.join(p['groups']))}</span></form></li>"
        for login, p in provider.people.items()
    )
    tenant = escape(provider.config["tenant"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{tenant} · company sign-in (demo)</title></head><body style="font-family:sans-serif;
max-width:560px;margin:40px auto"><h1>{tenant} sign-in</h1><p>The demo's identity
provider: pick a person of the demo company (no password; demo only).</p>
<ul style="list-style:none;padding:0">{rows}</ul></body></html>"""


async def _form(request: Any) -> dict[str, str]:
    """An urlencoded form body (what the login page and token clients send)."""
    return dict(parse_qsl((await request.body()).decode()))


def app(provider: Provider) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    def answer(out: tuple) -> Response:
        status, body, headers = out
        h = dict(headers)
        if status in (301, 302, 303):
            return RedirectResponse(h["Location"], status_code=302)
        return Response(
            json.dumps(body) if isinstance(body, dict) else body,
            status,
            h,
            media_type="application/json",
        )

    async def discovery(_: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def jwks(_: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def authorize(request: Request) -> Response:
        user = provider.sessions.get(request.cookies.get(IDP_COOKIE, ""))
        if user is None:
            return HTMLResponse(login_page(provider, request.url.query))
        req = provider.request(
            "GET", str(request.url), dict(request.headers), dict(request.query_params)
        )
        return answer(provider.server.create_authorization_response(req, grant_user=user))

    async def login(request: Request) -> Response:
        form = await _form(request)
        who = form.get("login", "")
        if who not in provider.people:
            return HTMLResponse("unknown person", 400)
        sid = generate_token(32)
        provider.sessions[sid] = who
        r = RedirectResponse(f"/authorize?{request.url.query}", status_code=303)
        r.set_cookie(IDP_COOKIE, sid, httponly=True, samesite="lax")
        return r

    async def token(request: Request) -> Response:
        form = await _form(request)
        req = provider.request("POST", str(request.url), request.headers, form)
        return answer(provider.server.create_token_response(req))

    async def logout(request: Request) -> Response:
        provider.sessions.pop(request.cookies.get(IDP_COOKIE, ""), None)
        after = request.query_params.get("post_logout_redirect_uri")
        if after not in provider.client.post_logout_redirect_uris:
            return HTMLResponse("<p>Signed out of the demo company.</p>")
        r = RedirectResponse(after, status_code=302)
        r.delete_cookie(IDP_COOKIE)
        return r

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/login", login, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/logout", logout),
        ]
    )


def write_config(run_dir: Path, api_url: str, tenant: str) -> dict[str, Any]:
    """The provider's configuration for this run (a new client secret each start)."""
    from ops.kafka_launcher import free_port

    port = free_port()
    config = {
        "port": port,
        "issuer": f"http://127.0.0.1:{port}",
        "tenant": tenant,
        "client_id": "skillstream-demo",
        "client_secret": secrets.token_urlsafe(32),
        "redirect_uris": [f"{api_url}/v1/auth/callback"],
        "post_logout_redirect_uris": [f"{api_url}/"],
    }
    path = run_dir / "demo-idp.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    return config


def main() -> None:
    import uvicorn

    config = json.loads(Path(os.environ["SKILLSTREAM_DEMO_IDP"]).read_text())
    provider = Provider(config)
    uvicorn.run(app(provider), host="127.0.0.1", port=config["port"], log_level="warning")


if __name__ == "__main__":
    main()
