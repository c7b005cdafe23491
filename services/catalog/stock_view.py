"""One process's view of the available stock, kept current by PostgreSQL's notifications.

Every catalogue read (listing, search, detail) shows each product's available stock, and
read it from ``stock_levels`` on every request: a round trip that was a quarter of a
cached read's time in the API (issue #15). A trigger now notifies ``shop_stock`` with the
product's id and its new availability whenever it changes (migration f15c0de00040), on
the process's one LISTEN connection (``core.notifications.ChannelListener``), and the
view answers from what it heard or read:

- a product not in the view is read as before (one statement for a page's missing ids)
  and kept, unless the view was dropped meanwhile (the read may predate a notification
  that was lost);
- a notification sets the product's value. Each value carries its stock row's revision
  (a sequence's value taken under the row's lock), and the view keeps the newest: a
  notification heard during the read wins over what was read if it is newer, and an
  older change's notification still on its way when the row was read is ignored;
- while the LISTEN is not in place (before the first connection, after a loss) the view
  is empty and keeps nothing: every read goes to the database, as before; a lost
  connection drops the view at once, and the reconnection starts it empty.

So a process answers a committed stock change once its notification has arrived (a
millisecond or so after the commit on one machine). Nothing that decides a sale reads
this view: reservations take the stock row's lock in the database (no oversell).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.inventory import StockRepository

CHANNEL = "shop_stock"
# About 150 bytes a product: 100,000 products are ~15 MB a process. Past the bound the
# view starts over (a catalogue that large reads the stock of the products it does not
# hold, as before).
MAX_PRODUCTS = 250_000


class StockView:
    def __init__(self, max_products: int = MAX_PRODUCTS) -> None:
        self.max_products = max_products
        # Product id -> (available, the stock row's revision it was at).
        self._available: dict[str, tuple[int, int]] = {}
        self._live = False
        # Bumped by every drop: a read that began before one keeps nothing.
        self.generation = 0
        # Notifications heard, and products read from the database (what tests and
        # benchmarks look at).
        self.heard = 0
        self.reads = 0

    @property
    def live(self) -> bool:
        """Whether notifications are heard (the view is kept)."""
        return self._live

    def __len__(self) -> int:
        return len(self._available)

    # ``ChannelSubscriber``: called by the listener on the event loop.
    def listening(self) -> None:
        self._drop()
        self._live = True

    def lost(self) -> None:
        self._live = False
        self._drop()

    def notified(self, payload: str) -> None:
        product_id, available, revision = payload.split(" ")
        self.heard += 1
        if self._live:
            self._keep(product_id, int(available), int(revision))

    def _drop(self) -> None:
        self._available = {}
        self.generation += 1

    def _keep(self, product_id: str, available: int, revision: int) -> None:
        held = self._available.get(product_id)
        if held is None:
            if len(self._available) >= self.max_products:
                self._drop()
        elif held[1] >= revision:
            return  # an older change (its notification was still on its way)
        self._available[product_id] = (available, revision)

    def shows(self, shown: Sequence[tuple[str, int]]) -> bool:
        """Whether the view holds each product with the availability ``shown``."""
        known = self._available
        for product_id, available in shown:
            held = known.get(product_id)
            if held is None or held[0] != available:
                return False
        return True

    def reading(self) -> tuple[int, bool]:
        """Taken before a stock read whose result is given to ``read``."""
        return self.generation, self._live

    def read(self, begun: tuple[int, bool], product_id: str, available: int, revision: int) -> int:
        """The availability to show of a product whose stock a read begun at ``begun``
        (``reading()``) found ``available`` at ``revision``, read with its row (product
        detail): kept unless the view was dropped since the read began, and the newer of
        it and what the view holds (a change heard during the read)."""
        if product_id not in self._available:
            self.reads += 1
        if begun == (self.generation, True):
            self._keep(product_id, available, revision)
        held = self._available.get(product_id)
        return held[0] if held is not None and held[1] >= revision else available

    def read_rows(self, begun: tuple[int, bool], rows: Iterable[Any]) -> None:
        """Rows of a page read with their stock since ``begun`` (``reading()``): those that
        carry it (``available``, ``stock_revision``: an index search's rows) are kept as
        ``read`` keeps a detail's, so showing the page reads no stock again."""
        for row in rows:
            revision = getattr(row, "stock_revision", None)
            if revision is not None:
                self.read(begun, row.id, row.available, revision)

    async def available(self, session: AsyncSession, product_ids: Sequence[str]) -> dict[str, int]:
        """Available stock by product (0 for a product without a stock row): from the
        view, and the products it does not hold from ``session`` in one statement."""
        known = self._available
        found: dict[str, int] = {}
        missing: list[str] = []
        for product_id in product_ids:
            held = known.get(product_id)
            if held is None:
                missing.append(product_id)
            else:
                found[product_id] = held[0]
        if not missing:
            return found
        generation, live = self.generation, self._live
        read = await StockRepository(session).available_revisions(missing)
        self.reads += len(missing)
        keep = live and generation == self.generation
        for product_id, (available, revision) in read.items():
            found[product_id] = available
            if keep:
                # Kept unless a newer change was heard during the read.
                self._keep(product_id, available, revision)
        return found
