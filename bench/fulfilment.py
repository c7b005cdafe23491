"""``shop bench fulfilment``: parcels per second the running stack books and tracks to the
door with the sandbox carrier, and how long each takes.

Setup, untimed: orders placed through the checkout as ``shop bench checkout`` does (one
unit each, ``fulfillment_queued``), and each order's fulfilment order started by the
relay. Timed, ``concurrency`` parcels in flight (closed loop): staff create the order's
one shipment (``POST /api/admin/fulfillments/{id}/shipments``), its ``ShipmentWorkflow``
books the label through the EasyPost sandbox; once the label is there the bench moves
the tracker with the sandbox's advance switch (``in_transit``, ``out_for_delivery``,
``delivered``), each move a signed ``tracker.updated`` webhook to
``POST /api/shipping/webhooks/easypost``, a signal, a tracking row; the parcel counts as
delivered when its order says ``delivered``.

Latencies are the server's own clock: shipment ``createdAt`` to ``shippedAt`` (the label
bought) and to the order's ``delivered`` timeline entry, so the poll interval does not
change them. Throughput counts over the wall time from the first create to the last
label (booked) or the last delivery (delivered).

The ceiling, in the same run: the same number of parcels through the carrier alone, at
the same concurrency: the EasyPost adapter's create and buy against the sandbox, then the
same three advances (whose webhooks name no parcel of ours, so the stack only verifies
and drops them). The ratio says what the workflow, the database rows and the polling of
our own API cost on top of the carrier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx

from bench.checkout import ADDRESS, _ts, place_and_follow
from bench.checkout_setup import (
    BenchError,
    Shopper,
    check_status,
    shoppers,
    staff_headers,
    stocked_product,
    wait_for_onboarding,
)
from bench.fulfilment_figures import FulfilmentResult, ParcelSample, Throughput
from core.settings import Settings

ADVANCES = ("in_transit", "out_for_delivery", "delivered")
PARCEL_WEIGHT_OZ = 16.0


async def _closed_loop(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    queue = list(reversed(jobs))

    async def client() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(client() for _ in range(concurrency)))


# --- setup ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadyOrder:
    shopper: Shopper
    order_id: str
    fulfillment_id: str
    lines: list[dict[str, Any]]


async def _fulfilment_of(
    http: httpx.AsyncClient, staff: dict[str, str], order_id: str, within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        page = check_status(
            await http.get("/api/admin/fulfillments", headers=staff, params={"orderId": order_id}),
            200,
        )
        if page["items"]:
            found: dict[str, Any] = page["items"][0]
            return found
        if time.monotonic() > deadline:
            raise BenchError(
                f"order {order_id} has no fulfilment order after {within:.0f} s: is the relay "
                "running (shop dev)?"
            )
        await asyncio.sleep(0.2)


async def ready_orders(
    http: httpx.AsyncClient, settings: Settings, staff: dict[str, str], count: int, c: int
) -> list[ReadyOrder]:
    product_id = await stocked_product(http, staff, count + 10)
    ready = await shoppers(http, count, product_id)
    await wait_for_onboarding(settings)
    placed: list[tuple[Shopper, str]] = []

    async def place(shopper: Shopper) -> None:
        sample = await place_and_follow(http, shopper, poll=0.2, within=120)
        if sample.status != "fulfillment_queued":
            raise BenchError(f"a setup order ended {sample.status} ({sample.failure_code})")
        placed.append((shopper, sample.order_id))

    await _closed_loop(c, [partial(place, s) for s in ready])
    result: list[ReadyOrder] = []
    for shopper, order_id in placed:
        fulfilment = await _fulfilment_of(http, staff, order_id, within=60)
        result.append(
            ReadyOrder(shopper, order_id, str(fulfilment["id"]), list(fulfilment["lines"]))
        )
    return result


# --- the timed part ---------------------------------------------------------------------


class StaffSession:
    """The staff's headers, renewed when the access token expires (it lives 15 minutes;
    setup and a long run on a loaded machine outlast it). The parcels' orders are read
    as staff too (staff see every order), so no shopper's token outlives its use."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http, self._settings = http, settings
        self._headers: dict[str, str] = {}
        self._renewing = asyncio.Lock()

    async def renew(self, stale: dict[str, str] | None = None) -> None:
        async with self._renewing:
            if stale is None or self._headers is stale:
                self._headers = await staff_headers(self._http, self._settings)

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for _ in range(2):
            headers = self._headers
            response = await self._http.request(method, url, headers=headers, **kwargs)
            if response.status_code != 401:
                return response
            await self.renew(stale=headers)
        return response


async def _advance(http: httpx.AsyncClient, tracker_id: str) -> None:
    for status in ADVANCES:
        check_status(
            await http.post(
                f"/_sandbox/easypost/trackers/{tracker_id}/advance", json={"status": status}
            ),
            200,
        )


async def _tracker_of(http: httpx.AsyncClient, shipment_id: str) -> str:
    held = check_status(
        await http.get("/_sandbox/easypost/shipments", params={"reference": shipment_id}), 200
    )
    tracker: dict[str, Any] = (
        (held[0].get("tracker") or {}) if isinstance(held, list) and held else {}
    )
    if not tracker.get("id"):
        raise BenchError(f"the sandbox holds no tracker for {shipment_id}")
    return str(tracker["id"])


async def _create_parcel(
    staff: StaffSession, order: ReadyOrder, lines: list[dict[str, Any]]
) -> dict[str, Any]:
    """Staff create the order's parcel. A 503 (the workflow did not answer the Update in
    time, on a saturated machine) may still have made it: the fulfilment is read until
    it shows the parcel (or for 30 s), and only then is it asked again."""
    url = f"/api/admin/fulfillments/{order.fulfillment_id}"
    for _ in range(5):
        response = await staff.send(
            "POST", f"{url}/shipments", json={"lines": lines, "weightOz": PARCEL_WEIGHT_OZ}
        )
        if response.status_code != 503:
            made: dict[str, Any] = check_status(response, 201)
            return made
        for _ in range(30):
            await asyncio.sleep(1)
            fulfilment = check_status(await staff.send("GET", url), 200)
            if fulfilment["shipments"]:
                found: dict[str, Any] = fulfilment["shipments"][0]
                return found
    raise BenchError(f"{url}: no parcel after five tries (503 each time)")


async def ship_and_follow(
    http: httpx.AsyncClient, staff: StaffSession, order: ReadyOrder, *, poll: float, within: float
) -> ParcelSample:
    lines = [
        {"orderLineId": line["orderLineId"], "quantity": line["quantity"]} for line in order.lines
    ]
    created = await _create_parcel(staff, order, lines)
    sample = ParcelSample(created_at=_ts(created["createdAt"]))
    shipment_id = str(created["id"])
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        fulfilment = check_status(
            await staff.send("GET", f"/api/admin/fulfillments/{order.fulfillment_id}"), 200
        )
        mine = next(s for s in fulfilment["shipments"] if s["id"] == shipment_id)
        sample.status = str(mine["status"])
        if mine["shippedAt"] is not None:
            sample.labelled_at = _ts(mine["shippedAt"])
            break
        await asyncio.sleep(poll)
    if sample.labelled_at is None:
        return sample
    await _advance(http, await _tracker_of(http, shipment_id))
    while time.monotonic() < deadline:
        seen = check_status(await staff.send("GET", f"/api/orders/{order.order_id}"), 200)
        sample.status = f"order {seen['status']}"
        if seen["status"] == "delivered":
            at = [_ts(e["createdAt"]) for e in seen["timeline"] if e["status"] == "delivered"]
            sample.delivered_at = min(at)
            break
        await asyncio.sleep(poll)
    return sample


async def carrier_alone(
    http: httpx.AsyncClient, settings: Settings, parcels: int, concurrency: int
) -> Throughput:
    """The ceiling: the same parcels through the sandbox carrier with no workflow."""
    from integrations.shipping.factory import build_shipping_provider, ship_from_address
    from integrations.shipping.provider import ParcelSpec, PostalAddress, ShipmentRequest

    provider = build_shipping_provider(settings)
    to = PostalAddress(
        name="Bench Shopper",
        street1=ADDRESS["street"],
        city=ADDRESS["city"],
        state=ADDRESS["state"],
        zip=ADDRESS["zip"],
        country="US",
    )
    booked: list[float] = []
    delivered: list[float] = []
    run = f"{int(time.time())}"

    async def one(n: int) -> None:
        request = ShipmentRequest(
            reference=f"bench-ceiling-{run}-{n}",
            to_address=to,
            from_address=ship_from_address(settings),
            parcel=ParcelSpec(weight_oz=PARCEL_WEIGHT_OZ),
        )
        shipment = await provider.create_shipment(request)
        label = await provider.buy_label(shipment.provider_shipment_id)
        booked.append(time.perf_counter())
        if label.tracker_id is None:
            raise BenchError("the sandbox bought a label without a tracker")
        await _advance(http, label.tracker_id)
        delivered.append(time.perf_counter())

    started = time.perf_counter()
    await _closed_loop(concurrency, [partial(one, n) for n in range(parcels)])
    return Throughput(
        "carrier",
        parcels,
        len(booked),
        len(delivered),
        max(booked) - started,
        max(delivered) - started,
    )


async def run(
    base_url: str,
    settings: Settings,
    *,
    parcels: int = 100,
    concurrency: int = 10,
    poll: float = 0.2,
    within: float = 180,
    ceiling: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FulfilmentResult:
    say = progress or (lambda _message: None)
    limits = httpx.Limits(
        max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
    )
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        setup_started = time.perf_counter()
        staff = await staff_headers(http, settings)
        say(f"setup: {parcels} orders through the checkout, {concurrency} at once…")
        orders = await ready_orders(http, settings, staff, parcels, concurrency)
        setup_seconds = time.perf_counter() - setup_started
        say(f"setup done in {setup_seconds:.1f} s; shipping {parcels} parcels…")
        samples: list[ParcelSample] = []
        session = StaffSession(http, settings)
        await session.renew()

        async def ship(order: ReadyOrder) -> None:
            samples.append(await ship_and_follow(http, session, order, poll=poll, within=within))

        started_at = datetime.now(UTC)
        await _closed_loop(concurrency, [partial(ship, o) for o in orders])
        result = FulfilmentResult(parcels, concurrency, setup_seconds, started_at, samples)
        if ceiling:
            say(f"ceiling: {parcels} parcels through the sandbox carrier alone…")
            result.ceiling = await carrier_alone(http, settings, parcels, concurrency)
    return result
