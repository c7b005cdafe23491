"""``OPTIONS``, and CORS for web pages of other origins (a storefront's JavaScript).

- ``OPTIONS`` on a path the API answers: 204 with ``Allow`` (RFC 9110 §9.3.7), not the 405
  FastAPI gave (it registers no ``OPTIONS`` route); on an unknown path, the 404 ``GET``
  gets there.
- A CORS preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
  from an allowed origin (``CORS_ALLOWED_ORIGINS``): 204 with the path's methods, the
  request headers the API reads and ``Access-Control-Max-Age``. From another origin, or
  asking for a method the path does not take or a header the API does not read: 403
  ``cors_preflight_refused``, without CORS headers (the browser then sends nothing).
- Every other answer to an allowed origin carries ``Access-Control-Allow-Origin`` and
  ``Access-Control-Expose-Headers`` (what a storefront reads: ``ETag``, ``Location``,
  ``Retry-After``…), errors included: a browser hides an answer without them from the
  page's code, which would see a network error instead of our problem+json. A 500 is
  answered outside this middleware (Starlette's outermost one): its handler adds what is
  left in the request's state here (``api/errors.py``). Answers vary by ``Origin``.

Not Starlette's ``CORSMiddleware``: it allows one list of methods for every path,
answers a preflight 200 and a refusal in plain text, and its headers miss the 500s.
Pure ASGI, inside the request-id middleware (a preflight is logged, counted and has its
id) and outside the input guard and idempotency (whose answers get the headers too).
"""

from __future__ import annotations

from collections.abc import Collection
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.allowed_methods import path_methods
from api.problems import send_problem

# The request headers the API reads (besides the CORS-safelisted ones a browser sends
# without asking): a preflight asking for any other is refused.
ALLOWED_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-None-Match",
    "Prefer",
    "X-Cart-Token",
    "X-Anonymous-Id",
    "Last-Event-ID",
    "X-Request-ID",
    "traceparent",
    "tracestate",
)
# The response headers a page's code may read besides the safelisted ones (Content-Type,
# Content-Length, Cache-Control…).
EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Preference-Applied",
    "Allow",
    "WWW-Authenticate",
)
_EXPOSED = ", ".join(EXPOSED_HEADERS)
# Where the 500 handler finds the headers of this request's answer.
STATE_KEY = "cors_headers"

_ALLOWED_NAMES = frozenset(h.lower() for h in ALLOWED_REQUEST_HEADERS)


class CorsPolicy:
    """Which origins may read our answers, and the headers that tell a browser so."""

    def __init__(self, origins: Collection[str], *, credentials: bool, max_age: int) -> None:
        self.any_origin = "*" in origins
        self.origins = frozenset(origins) - {"*"}
        self.credentials = credentials
        self.max_age = max_age

    @property
    def enabled(self) -> bool:
        return self.any_origin or bool(self.origins)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def headers(self, origin: str) -> dict[str, str]:
        """An allowed ``origin``'s headers on any answer."""
        headers = {"Access-Control-Allow-Origin": "*" if self.any_origin else origin}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        headers["Access-Control-Expose-Headers"] = _EXPOSED
        return headers


class CorsMiddleware:
    def __init__(self, app: ASGIApp, *, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = asked_method = asked_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                asked_method = value.decode("latin-1").strip()
            elif name == b"access-control-request-headers":
                asked_headers = value.decode("latin-1")
        cors = (
            self.policy.headers(origin) if origin is not None and self.policy.allows(origin) else {}
        )
        if self.policy.enabled:
            cors["Vary"] = "Origin"
        if scope["method"] == "OPTIONS":
            methods = path_methods(scope)
            if methods:
                if origin is not None and asked_method is not None:
                    await self._preflight(
                        scope, receive, send, methods, origin, asked_method, asked_headers
                    )
                    return
                await _no_content(send, {"Allow": ", ".join(methods), **cors})
                return
        if not cors:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = cors

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers", []), cors)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        methods: list[str],
        origin: str,
        asked_method: str,
        asked_headers: str | None,
    ) -> None:
        asked = [h.strip().lower() for h in (asked_headers or "").split(",") if h.strip()]
        unknown = [h for h in asked if h not in _ALLOWED_NAMES]
        refusal = None
        if not self.policy.allows(origin):
            refusal = (
                "this origin is not allowed to call the API from a browser (CORS_ALLOWED_ORIGINS)"
            )
        elif asked_method not in methods:
            refusal = f"{asked_method} is not allowed on {scope['path']}: {', '.join(methods)}"
        elif unknown:
            refusal = f"request header(s) {', '.join(unknown)} not allowed; allowed: " + ", ".join(
                ALLOWED_REQUEST_HEADERS
            )
        if refusal is not None:
            await send_problem(
                scope,
                receive,
                send,
                status=HTTPStatus.FORBIDDEN,
                code="cors_preflight_refused",
                title="CORS preflight refused",
                detail=refusal,
                headers={"Vary": _PREFLIGHT_VARY},
            )
            return
        await _no_content(
            send,
            {
                **self.policy.headers(origin),
                "Access-Control-Allow-Methods": ", ".join(methods),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_REQUEST_HEADERS),
                "Access-Control-Max-Age": str(self.policy.max_age),
                "Allow": ", ".join(methods),
                "Vary": _PREFLIGHT_VARY,
            },
        )


_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


async def _no_content(send: Send, headers: dict[str, str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _with_headers(
    headers: list[tuple[bytes, bytes]], extra: dict[str, str]
) -> list[tuple[bytes, bytes]]:
    """``headers`` and ``extra``; a ``Vary`` already there gets ``Origin`` added to it."""
    out = list(headers)
    for name, value in extra.items():
        key = name.lower().encode("latin-1")
        if key == b"vary":
            for i, (k, v) in enumerate(out):
                if k.lower() == b"vary":
                    if b"origin" not in v.lower() and v.strip() != b"*":
                        out[i] = (k, v + b", " + value.encode("latin-1"))
                    break
            else:
                out.append((key, value.encode("latin-1")))
        else:
            out.append((key, value.encode("latin-1")))
    return out
