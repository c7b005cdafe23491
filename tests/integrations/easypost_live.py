"""A live API with the EasyPost sandbox, its webhooks captured by a small receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cli.stack.process import free_port
from core.settings import Settings
from integrations.shipping.easypost import EasyPostProvider
from integrations.shipping.provider import (
    ParcelSpec,
    PostalAddress,
    ShipmentRequest,
)
from tests.live import live_api

AUTH = {"Authorization": "Bearer EZTK_test"}


@dataclass
class Hooks:
    """What the sandbox POSTed: each body with its headers, in arrival order."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        self.received.append((await request.body(), dict(request.headers)))
        return Response(status_code=200)

    def for_tracker(self, tracker_id: str) -> list[tuple[bytes, dict[str, str]]]:
        return [
            (body, headers)
            for body, headers in self.received
            if json.loads(body)["result"]["id"] == tracker_id
        ]

    async def wait_for(self, tracker_id: str, count: int, seconds: float = 10) -> list[Any]:
        for _ in range(int(seconds / 0.05)):
            found = self.for_tracker(tracker_id)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.for_tracker(tracker_id))} webhooks for {tracker_id}")


@dataclass(frozen=True)
class EasyPostStack:
    settings: Settings
    base_url: str  # the API's
    hooks: Hooks

    @property
    def sandbox_url(self) -> str:
        return f"{self.base_url}/_sandbox/easypost"

    def provider(self, **overrides: Any) -> EasyPostProvider:
        return EasyPostProvider.from_settings(self.settings.model_copy(update=overrides))


@asynccontextmanager
async def easypost_stack(settings: Settings) -> AsyncIterator[EasyPostStack]:
    hooks = Hooks()
    port = free_port()
    receiver = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hooks", hooks.endpoint, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    task = asyncio.create_task(receiver.serve())
    live = settings.model_copy(
        update={
            "shop_api_port": free_port(),
            "easypost_webhook_url": f"http://127.0.0.1:{port}/hooks",
        }
    )
    try:
        async with live_api(live) as base:
            yield EasyPostStack(live, base, hooks)
    finally:
        receiver.should_exit = True
        await task


def shipment_request(
    reference: str, *, zip_code: str = "94105", weight_oz: float = 12.0, is_return: bool = False
) -> ShipmentRequest:
    return ShipmentRequest(
        reference=reference,
        to_address=PostalAddress(
            name="Ada Lovelace",
            street1="417 Montgomery St",
            street2="Floor 5",
            city="San Francisco",
            state="CA",
            zip=zip_code,
            country="US",
            phone="4155550100",
        ),
        from_address=PostalAddress(
            name="Shopweave Warehouse",
            street1="1 Warehouse Way",
            city="Boston",
            state="MA",
            zip="02118",
            country="US",
        ),
        parcel=ParcelSpec(weight_oz=weight_oz, length_in=10, width_in=8, height_in=4),
        is_return=is_return,
    )


async def advance(
    http: httpx.AsyncClient, tracker_id: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await http.post(
        f"/trackers/{tracker_id}/advance", json=body if body is not None else None
    )
