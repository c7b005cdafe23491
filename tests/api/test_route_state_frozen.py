"""The API's route state is built once, before an API process freezes its heap
(``cli.serve.settle_heap``), and no request builds more of it.

FastAPI 0.16x includes routers lazily: every included route's ``Dependant``s, parameter
and response fields were built at the first request, after the freeze (1,262
``Dependant``s, ~24,000 tracked objects, walked by every full collection since; the
catalogue bench's count of Dependants "created after start"). Built once and kept: the
count does not grow with requests either (no leak), which is checked over two rounds.
"""

from __future__ import annotations

import gc

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from cli.serve import settle_heap


def _walked_dependants() -> int:
    """``Dependant``s the collector walks (the frozen ones are not listed)."""
    return sum(isinstance(o, Dependant) for o in gc.get_objects())


async def _requests(client: httpx.AsyncClient, round_: int) -> None:
    for i in range(40):
        searched = await client.get("/api/products", params={"search": f"lamp {round_} {i}"})
        assert searched.status_code == 200, searched.text
    for i in range(10):
        assert (await client.get(f"/api/products/none-{round_}-{i}")).status_code == 404
        assert (await client.get("/api/categories")).status_code == 200
        assert (await client.get("/api/products", params={"nope": "1"})).status_code == 422


async def test_no_request_builds_dependants_after_the_heap_is_settled(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    settle_heap(app)
    try:
        assert _walked_dependants() == 0
        await _requests(client, 1)
        assert _walked_dependants() == 0
    finally:
        gc.unfreeze()
    # Bounded: the route state is built once, whatever the number of requests.
    gc.collect()
    built = _walked_dependants()
    assert built > 1000  # the app's own, now that they are listed again
    await _requests(client, 2)
    gc.collect()
    assert _walked_dependants() == built
