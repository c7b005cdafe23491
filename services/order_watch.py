"""Following an order without polling: its ETag, a long-poll, and a stream of its states.

Every write that changes what ``GET /api/orders/{id}`` shows notifies ``shop_order`` with
the order's id, from a trigger in the writing transaction (migration f15c0de00010); a
change of the order row adds its status (``ord_… confirmed``, migration a7c0de140010).
Each API process holds one ``LISTEN`` (``core.notifications.ChannelListener``) and wakes
only the waiters of that order, which then read the order once, in a short session of
their own: no waiter holds a database connection while it waits, and none polls.

A waiter for some statuses (``?until=``) knows the order's status from what it heard:
the order row's changes commit in the order of its row lock, and notifications arrive in
commit order, so the latest status heard is the latest committed one delivered (a later
one is still on its way, and wakes the waiter again). It reads the status only before it
heard one, or after the listener lost its connection (issue #15: a status read per
wake-up was the long-poll's most frequent statement).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

from core.db import SessionFactory
from core.notifications import ChannelListener, Lease, Waiter
from core.settings import Settings
from models.order_api import OrderPublic
from models.orders import AFTER_SALE_STATUSES, FINAL_STATUSES, OrderStatus, TimelineAudience
from services.analytics import AnalyticsRecorder
from services.order_repository import OrderRepository
from services.orders import OrderService

CHANNEL = "shop_order"
# Where a stream of the order's states ends: OrderWorkflow is done with it (handed to
# the warehouse, failed or cancelled), or fulfilment has moved it on since.
SETTLED_STATUSES = FINAL_STATUSES | AFTER_SALE_STATUSES


def order_etag(order: OrderPublic) -> str:
    """A strong ETag of the order as the API renders it: it changes whenever the body
    does (status, timeline, payment, parcels, …)."""
    body = order.model_dump_json(by_alias=True).encode()
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def is_settled(order: OrderPublic) -> bool:
    return OrderStatus(order.status) in SETTLED_STATUSES


def awaited(status: OrderStatus, statuses: Collection[OrderStatus]) -> bool:
    """Whether a waiter for ``statuses`` is answered at ``status``: one of them, or a
    settled status (the order will not reach the others any more, or has passed them)."""
    return status in statuses or status in SETTLED_STATUSES


@dataclass(frozen=True)
class OrderState:
    order: OrderPublic
    etag: str

    @property
    def settled(self) -> bool:
        return is_settled(self.order)


class OrderWatch:
    def __init__(
        self,
        sessions: SessionFactory,
        read_sessions: SessionFactory,
        settings: Settings,
        analytics: AnalyticsRecorder,
        changes: ChannelListener,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions  # autocommit: a status check is one round trip
        self._settings = settings
        self._analytics = analytics
        self.changes = changes

    async def current(self, order_id: str, reader: TimelineAudience) -> OrderState:
        """The order as the API renders it for ``reader``, read in a session of its own
        (raises ``OrderNotFound``). A customer's state, and so its ETag, leaves the
        staff-only timeline entries out: one written wakes the waiters, whose re-read
        finds the same ETag and waits on."""
        async with self._sessions() as session:
            # One snapshot for the order and its timeline, payment and parcels: read
            # committed would let a commit land between the queries, and a torn state
            # has an ETag of its own (a waiter would answer it as a change).
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            order = await OrderRepository(session).require(order_id)
            service = OrderService(session, self._settings, self._analytics)
            public = await service.public(order, reader)
        return OrderState(public, order_etag(public))

    async def _status(
        self, order_id: str, waiter: Waiter, known: OrderStatus | None
    ) -> OrderStatus:
        """The order's status: the latest one ``waiter`` heard, else ``known`` (read or
        heard before), else read (one round trip) when nothing is known or notifications
        may have been lost."""
        heard, lost = waiter.heard()
        if heard is not None:
            return OrderStatus(heard)
        if known is not None and not lost:
            return known
        async with self._read_sessions() as session:
            return await OrderRepository(session).status_of(order_id)

    async def wait_for_change(
        self,
        order_id: str,
        reader: TimelineAudience,
        known: Collection[str],
        wait: float,
        statuses: Collection[OrderStatus] | None = None,
    ) -> OrderState:
        """The order as ``reader`` sees it once its ETag is none of ``known`` (and, with
        ``statuses``, once it is in one of them or settled): at once if it already is,
        else as soon as such a change is committed; as it is if ``wait`` seconds pass
        first."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + wait
        status: OrderStatus | None = None
        with self.changes.watch(order_id) as waiter:
            # Watching before reading: a change committed in between still wakes us.
            while True:
                state: OrderState | None = None
                if statuses is None:
                    state = await self.current(order_id, reader)
                else:
                    # Only the status until it is one asked for (no rendering).
                    status = await self._status(order_id, waiter, status)
                    if awaited(status, statuses):
                        state = await self.current(order_id, reader)
                        status = OrderStatus(state.order.status)
                        if not awaited(status, statuses):
                            state = None  # it moved past them between the two reads
                if state is not None and state.etag not in known:
                    return state
                left = deadline - clock()
                if left <= 0 or not await waiter.wait(left):
                    return state or await self.current(order_id, reader)

    async def follow(
        self,
        order_id: str,
        reader: TimelineAudience,
        last_etag: str | None,
        lease: Lease | None = None,
    ) -> AsyncIterator[OrderState]:
        """The order's states as ``reader`` sees them: the current one (unless it is
        ``last_etag``), then each new one as it is committed, until a settled one (or
        until ``lease`` is over: the caller's token expired or was revoked)."""
        known = last_etag
        with self.changes.watch(order_id) as waiter:
            while True:
                state = await self.current(order_id, reader)
                if state.etag != known:
                    known = state.etag
                    yield state
                if state.settled:
                    return
                if lease is None:
                    await waiter.wait(None)
                elif not await lease.wait(waiter):
                    return
