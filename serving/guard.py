"""ASGI middleware in front of POST /classify and /feedback (bearer token, content type, body size), and one that
puts BentoML's own error answers into the API's error model (serving/errors.py).

Plain ASGI rather than Starlette's BaseHTTPMiddleware: this sits on the hot path and must stay cheap.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from serving.errors import error_response, from_framework

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestGuard:
    """Checks POST requests to `path` before the route parses them."""

    def __init__(self, app: ASGIApp, path: str, max_body_bytes: int, api_token: str | None = None) -> None:
        self.app = app
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.expected_auth = f"Bearer {api_token}".encode() if api_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # header names arrive lower-cased
        if self.expected_auth is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected_auth
        ):
            await error_response(401, "Authorization: send the header 'Authorization: Bearer <TEXTCLF_API_TOKEN>'",
                                 {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            await error_response(415, "Content-Type: must be application/json")(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(scope, receive, send)
            return
        # Read the whole body here (also for chunked uploads without Content-Length) so the size limit holds,
        # then replay it to BentoML.
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        if not body:
            await error_response(400, "body: empty; send a JSON object")(scope, receive, send)
            return
        replayed = iter([{"type": "http.request", "body": bytes(body), "more_body": False}])

        async def replay() -> Message:
            return next(replayed, None) or await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(413, f"body: larger than {self.max_body_bytes} bytes (TEXTCLF_MAX_BODY_BYTES); "
                                  "send a smaller one")(scope, receive, send)


class ErrorBodies:
    """Puts the 4xx/5xx answers BentoML writes itself on `paths` (validation errors, 503s) into our error model."""

    def __init__(self, app: ASGIApp, paths: Collection[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        start: Message | None = None  # an error answer's start, held back until its body is complete
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
            elif start is None:
                await send(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    status, dropped = start["status"], (b"content-length", b"content-type")
                    kept = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"] if k not in dropped}
                    await error_response(status, headers=kept, **from_framework(status, b"".join(chunks)))(
                        scope, receive, send)

        await self.app(scope, receive, rewrite)
