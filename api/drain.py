"""Read the rest of a request body before answering early.

A route may answer before it read the whole body (413 over the size limit,
401 for a bad key). The server then closes the connection with unread bytes
in its socket, and the kernel answers them with a reset: a client that
writes its whole body before reading (Python's http.client, so urllib and
requests) sees "connection reset" instead of the answer. curl reads early
and gets it. So before the first byte of an answer goes out, the rest of
the body is read and dropped, up to ``HTTP_DRAIN_MAX_BYTES`` and
``HTTP_DRAIN_TIMEOUT_S`` (a sender past either gets the reset: draining
without bounds would let anyone hold a worker with an endless body).
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DrainBody:
    """Pure ASGI; nothing is buffered, the drained bytes are dropped."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = False

        async def tracked_receive() -> Message:
            nonlocal done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        async def draining_send(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start" and not done:
                done = True
                if _declared(scope) <= self.max_bytes:
                    # a trickling sender past the timeout: answer now, the close may reset it
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._drain(receive), self.timeout_s)
            await send(message)

        await self.app(scope, tracked_receive, draining_send)

    async def _drain(self, receive: Receive) -> None:
        read = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            read += len(message.get("body", b""))
            if not message.get("more_body", False) or read > self.max_bytes:
                return


def _declared(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
