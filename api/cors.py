"""CORS for browsers: the ingest endpoints answer origins a tenant allowed
(`skillstream tenant origins`); the report endpoints answer only the origins
in ``REPORT_CORS_ORIGINS``; nothing else (admin, governance, exports) ever
sends CORS headers.

A preflight carries no write key, so it is answered for an origin that some
tenant allowed; the request itself is then checked against the key's own
tenant (``api.routes.events``). Preflights are answered here, from the cached
allow-list: they never reach a route, the producer or Kafka.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# path -> methods a browser may use on it
INGEST = {
    "/v1/events/batch": "POST",
    "/v1/events": "POST",
    "/v1/events/dictionary": "GET",
    "/xapi/statements": "POST, PUT, GET",
    "/xapi/about": "GET",
}
REPORTS_PREFIX = "/v1/reports/"
ALLOW_HEADERS = "authorization, content-type, x-experience-api-version"
MAX_AGE_S = "600"


class BrowserCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _allowed(self, scope: Scope, origin: str) -> str | None:
        """The methods this origin may use on this path, or None."""
        ctx = scope["app"].state.ctx
        path = scope["path"]
        if path in INGEST:
            return INGEST[path] if ctx.origins.known(origin) else None
        if path.startswith(REPORTS_PREFIX) and origin in ctx.settings.report_origins:
            return "GET"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not origin:
            await self.app(scope, receive, send)
            return
        methods = self._allowed(scope, origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(methods, origin, headers)(scope, receive, send)
            return
        if methods is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                out += [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", b"Retry-After, X-Experience-API-Version"),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _preflight(methods: str | None, origin: str, headers: Headers) -> Response:
        wanted = headers["access-control-request-method"].upper()
        if methods is None or wanted not in methods.split(", "):
            return PlainTextResponse(
                f"origin {origin} may not {wanted} here",
                status_code=403,
                headers={"Vary": "Origin"},
            )
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE_S,
                "Vary": "Origin",
            },
        )
