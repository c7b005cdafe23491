"""Rendered answers of catalogue reads, kept by each process and sent again as bytes.

A cached listing or detail still cost FastAPI's reading of the request (the query
parameters validated one by one, the dependencies solved), the cache lookups and the
serialisation: most of what was left of its time in the API once the stock and the
version no longer took a round trip (issue #15). A guest's request whose answer this
process rendered before is answered with the same bytes, before FastAPI reads it
(``api.routes.catalog.AnsweredRoute``), while the answer is still what a full read would
give:

- the catalogue version it was rendered under is the one the process holds
  (``CatalogVersion.known``: a write, or a version not held, misses);
- the cache entry it was rendered from has not expired (its expiry, a discount window's
  edge at the latest, is the answer's);
- each product's availability in it is what the stock view holds now (a change heard
  since, or a view dropped, misses);
- a search's page was ranked by the search engine the process searches now (the index's
  generation: a change the relay carried to the index since, or the index turning ready
  or not, misses), as its cache entry is keyed.

Only the answer of a request that went the full way (validated, 200) is kept, under
its exact path and query string, so a bad request is never answered from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.catalog.stock_view import StockView

# About 15 KB a listing page of 20, 1 KB a detail: at most ~60 MB a process.
MAX_ANSWERS = 4_096


@dataclass(frozen=True, slots=True)
class Answer:
    version: str
    expires: float  # on the cache's clock
    body: bytes
    # Each product's availability as shown in ``body``.
    stock: tuple[tuple[str, int], ...]
    # The analytics event a read records (``product_view``, ``product_search``): its name
    # and properties.
    event: tuple[str, dict[str, Any]] | None = None
    # A search's: the engine and index generation that ranked it (``ProductSearch.name``).
    engine: str | None = None


class Answers:
    def __init__(
        self, max_entries: int = MAX_ANSWERS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._version: str | None = None
        self._entries: dict[tuple[str, bytes], Answer] = {}
        # Answers sent from here (what tests and benchmarks look at).
        self.hits = 0

    def get(
        self,
        key: tuple[str, bytes],
        version: str | None,
        stock: StockView,
        search_engine: Callable[[], str] | None = None,
    ) -> Answer | None:
        """The answer kept for ``key`` (path, query string) if it is still the one a full
        read gives under ``version``, else None (and it is forgotten). ``search_engine``
        names the engine a search would use now (asked only of a search's answer)."""
        answer = self._entries.get(key)
        if answer is None:
            return None
        if (
            answer.version != version
            or self.clock() >= answer.expires
            or not stock.shows(answer.stock)
            or (
                answer.engine is not None
                and (search_engine is None or search_engine() != answer.engine)
            )
        ):
            del self._entries[key]
            return None
        self.hits += 1
        return answer

    def put(self, key: tuple[str, bytes], answer: Answer) -> None:
        if answer.version != self._version:
            self._entries.clear()  # none of them can be sent again
            self._version = answer.version
        elif key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest
        self._entries[key] = answer

    def __len__(self) -> int:
        return len(self._entries)
