"""What a catalogue listing or search asks (``ProductQuery``) and answers
(``SearchResult``), and the limits on its search words."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.catalog.rows import ProductFields

# Searches are matched on their first 100 characters: enough for any real query, and a
# paste costs no more than a short one.
SEARCH_CHARS = 100
# The longest ``search`` the API accepts (422 above it). At most 6 KB percent-encoded
# (12 bytes a character): a URL that fits the 8 KB request line nginx reads by default
# and the API's own request head limit (``cli.serve.MAX_REQUEST_HEAD_BYTES``).
SEARCH_MAX_LENGTH = 500
# A search counts its matches up to this many and ranks by relevance only this many
# candidates (the first found by the indexes), as search engines do: a broad word that
# matches 10,000 products then costs what 1,000 do. Above it ``total`` is a lower bound
# (``total_exact`` false) and relevance-ranked pages end at the candidates' end.
SEARCH_CANDIDATES = 1_000


class ProductSort(StrEnum):
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    RATING = "rating"
    RELEVANCE = "relevance"


@dataclass(frozen=True)
class SearchResult:
    rows: Sequence[ProductFields]
    total: int
    # False when a search matched more than ``SEARCH_CANDIDATES``: ``total`` is then that
    # cap, a lower bound of the true count.
    total_exact: bool = True


@dataclass(frozen=True)
class ProductQuery:
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    search: str | None = None
    in_stock: bool | None = None
    sort: ProductSort | None = None
    page: int = 1
    limit: int = 20

    def cache_params(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None else None) for k, v in self.__dict__.items()}

    def count_params(self) -> dict[str, Any]:
        """What the total depends on: the filters, not the page or the order."""
        return {k: v for k, v in self.cache_params().items() if k not in ("sort", "page", "limit")}


def normalize_search(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = " ".join(unicodedata.normalize("NFKC", text).split())[:SEARCH_CHARS]
    return cleaned or None
