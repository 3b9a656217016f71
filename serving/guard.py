"""ASGI middleware in front of POST /classify: bearer token, content type, body size, uniform 4xx JSON.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: this sits on the hot path and must stay cheap.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def describe_validation(payload: Any) -> Any:
    """Turn BentoML's 400 body (pydantic errors) into `{"error": "texts[3]: Input should be ...", "detail"}`."""
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = payload[0]  # BentoML wraps some client errors in a one-item list
    if not isinstance(payload, dict):
        return {"error": str(payload)}
    details = payload.get("detail")
    if not isinstance(details, list) or not details:
        return {"error": str(payload.get("error", "bad request"))}
    messages = []
    for item in details[:5]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item.get("loc", ()))
        field = loc.lstrip(".") or "body"
        if item.get("type") == "json_invalid":
            field = "body"
        messages.append(f"{field}: {item.get('msg', 'invalid')}")
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    slim = [{k: d.get(k) for k in ("type", "loc", "msg")} for d in details]
    return {"error": "; ".join(messages) + more, "detail": slim}


class RequestGuard:
    """Checks requests to `path` before BentoML parses them; rewrites BentoML's 4xx bodies to name the field."""

    def __init__(self, app: ASGIApp, path: str, max_body_bytes: int, api_token: str | None = None,
                 rewrite_errors: bool = True) -> None:
        self.app = app
        self.path = path
        self.rewrite_errors = rewrite_errors
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
            await send_json(
                send,
                401,
                {"error": "Authorization: send the header 'Authorization: Bearer <TEXTCLF_API_TOKEN>'"},
                [(b"www-authenticate", b"Bearer")],
            )
            return
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            await send_json(send, 415, {"error": "Content-Type: must be application/json"})
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._too_large(send)
            return
        # Read the whole body here (also for chunked uploads without Content-Length) so the size limit holds,
        # then replay it to BentoML.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not body:
            await send_json(send, 400, {"error": "body: empty; send a JSON object"})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, _ClientErrorRewriter(send) if self.rewrite_errors else send)

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, {"error": f"body: larger than {self.max_body_bytes} bytes"})


class _ClientErrorRewriter:
    """Passes responses through; buffers only 4xx ones and rewrites them into one message naming the field."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if 400 <= message["status"] < 500:
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            try:
                payload = describe_validation(json.loads(b"".join(self.chunks)))
            except ValueError:
                payload = {"error": b"".join(self.chunks).decode("utf-8", "replace")[:500]}
            keep = [(k, v) for k, v in self.start["headers"] if k.lower() not in (b"content-length", b"content-type")]
            await send_json(self.send, self.start["status"], payload, keep)
            return
        await self.send(message)
