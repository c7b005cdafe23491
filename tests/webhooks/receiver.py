"""A real HTTP receiver for outgoing webhooks: a uvicorn app on a free port that records
every request (by path) and answers the statuses a test scripts, then 200."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cli.stack.process import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class Receiver:
    base_url: str
    requests: dict[str, list[Received]] = field(default_factory=dict)
    # Statuses to answer next, per path (then 200); a delay before each answer, per path.
    script: dict[str, list[int]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def got(self, path: str) -> list[Received]:
        return self.requests.get(path, [])

    async def _handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        body = await request.body()
        self.requests.setdefault(path, []).append(Received(dict(request.headers), body))
        await asyncio.sleep(self.delay.get(path, 0))
        statuses = self.script.get(path) or []
        code = statuses.pop(0) if statuses else 200
        return Response(f"answered {code}", status_code=code)


@asynccontextmanager
async def receiver(tls: tuple[Path, Path] | None = None) -> AsyncIterator[Receiver]:
    """On 127.0.0.1; https with ``tls`` (a certificate file and its key file)."""
    port = free_port()
    found = Receiver(base_url=f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    app = Starlette(routes=[Route("/{path}", found._handle, methods=["POST"])])
    certfile, keyfile = tls or (None, None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
    )
    serving = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield found
    finally:
        server.should_exit = True
        await serving
