"""Input every endpoint refuses before it is routed: oversized bodies and NUL characters.

One place for rules that hold for every field of every operation (issue 11):

- A body larger than ``MAX_BODY_BYTES`` answers 413 ``payload_too_large``: at once when
  its ``Content-Length`` says so, otherwise as soon as the bytes read pass the limit, so
  a huge body is never read in full.
- A NUL character (U+0000) anywhere in the path, the query or a body answers 422: text
  columns in PostgreSQL cannot hold it, and no field of ours means it.

Pure ASGI, so it holds for routes, sandboxes and unknown paths alike. Bodies are read
here (up to the limit) and handed on unchanged.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import send_problem

# A JSON "\u0000" escape: a backslash that is not itself escaped, then u0000.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _has_nul(raw: bytes, *, percent_encoded: bool) -> bool:
    """True if ``raw`` carries a NUL: raw, as a JSON escape, or (in a path, a query or a
    form body) percent-encoded."""
    if b"\x00" in raw or (percent_encoded and b"%00" in raw):
        return True
    return not percent_encoded and _JSON_NUL.search(raw) is not None


class _TooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before its request's body was whole."""


class InputGuardMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or b""
        if "\x00" in scope["path"] or _has_nul(raw_path, percent_encoded=True):
            await self._refuse_nul(scope, receive, send, where="path")
            return
        if _has_nul(scope.get("query_string", b""), percent_encoded=True):
            await self._refuse_nul(scope, receive, send, where="query")
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse_size(scope, receive, send)
            return
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            await self._refuse_size(scope, receive, send)
            return
        except ClientGone:
            # Nobody is left to answer, and what came is not the request: a body cut
            # short must never run as if it were whole (a create missing its fields,
            # answered 4xx and kept under its Idempotency-Key, refuses the client's
            # retry of the whole request).
            return
        # Kept for the error handler, which names the line and column of invalid JSON.
        scope.setdefault("state", {})["raw_body"] = body
        form = _header(scope, b"content-type").startswith("application/x-www-form-urlencoded")
        if _has_nul(body, percent_encoded=form):
            await self._refuse_nul(scope, receive, send, where="body")
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse_size(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_problem(
            scope,
            receive,
            send,
            status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            code="payload_too_large",
            title="Payload too large",
            detail=f"the request body is larger than {self.max_body_bytes} bytes",
            extra={"limit": self.max_body_bytes},
            headers={"Connection": "close"},
        )

    async def _refuse_nul(self, scope: Scope, receive: Receive, send: Send, *, where: str) -> None:
        await send_problem(
            scope,
            receive,
            send,
            status=HTTPStatus.UNPROCESSABLE_ENTITY,
            code="validation_error",
            title="The request is not valid",
            detail=f"the {where} contains a NUL character (U+0000), which no field accepts",
            extra={
                "errors": [
                    {
                        "field": where,
                        "in": where,
                        "message": "NUL characters (U+0000) are not allowed",
                        "type": "nul_character",
                    }
                ]
            },
        )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1").strip().lower())
    return ""
