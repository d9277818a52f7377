"""Requests and latency per route template and status, for every route
(the API's 5xx alert and its latency panel read these)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "skillstream_http_requests_total", "API responses by route and status", ["route", "status"]
)
SECONDS = Histogram("skillstream_http_request_seconds", "API latency by route", ["route"])


class HttpMetrics:
    """Pure ASGI (no response buffering): the route template, not the raw
    path, so ids in paths do not make a label per learner."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(name, str(status)).inc()
            SECONDS.labels(name).observe(time.perf_counter() - started)
