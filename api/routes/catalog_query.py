"""A guest's first listing or search read from its query string without FastAPI
(issue #15).

FastAPI's reading of ``GET /products`` (nine query parameters validated one by one, the
dependencies solved) cost 0.8 ms of a first search's 2-3.5 ms of API CPU, and a sixth of
a first filtered listing's (docs/benchmarks.md *Catalogue reads*). A query string is
read here instead, but only when FastAPI would read it the same way and accept it: every
parameter known and given once, every value written plainly and in range. Anything else
(a parameter this does not know or given twice, a value FastAPI refuses) is None here,
and the route's full read answers it, errors included (problem+json from FastAPI's
validation and ``api/query_parameters.py``), so no request is judged twice differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from models.catalog import MAX_AMOUNT
from services.catalog.product_query import (
    SEARCH_MAX_LENGTH,
    ProductQuery,
    ProductSort,
    normalize_search,
)

# A plain decimal: no sign, no leading zero, no spaces or underscores (which the full
# read refuses: api/query_parameters.py), at most ten digits.
_PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,9}")
_SORTS = {sort.value: sort for sort in ProductSort}
# The full read's spellings (``api/query_parameters.PLAIN_BOOLEANS``): anything else
# goes the full way, and is refused there.
_BOOLS = {"true": True, "false": False}
# The route's bounds (``list_products``'s ``Query`` declarations).
CATEGORY_MAX_LENGTH = 120
MAX_PAGE = 10_000
MAX_LIMIT = 100


def _int_in(low: int, high: int) -> Callable[[str], int | None]:
    def read(value: str) -> int | None:
        if _PLAIN_INT.fullmatch(value) is None:
            return None
        number = int(value)
        return number if low <= number <= high else None

    return read


def _text_up_to(length: int) -> Callable[[str], str | None]:
    return lambda value: value if len(value) <= length else None


# Each parameter's wire name, its ``ProductQuery`` field and how its value is read (None:
# not one to read here).
_READERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "search": ("search", _text_up_to(SEARCH_MAX_LENGTH)),
    "category": ("category", _text_up_to(CATEGORY_MAX_LENGTH)),
    "minPrice": ("min_price", _int_in(0, MAX_AMOUNT)),
    "maxPrice": ("max_price", _int_in(0, MAX_AMOUNT)),
    "inStock": ("in_stock", _BOOLS.get),
    "sort": ("sort", _SORTS.get),
    "page": ("page", _int_in(1, MAX_PAGE)),
    "limit": ("limit", _int_in(1, MAX_LIMIT)),
}


def guest_listing_query(query_string: bytes) -> ProductQuery | None:
    """The ``ProductQuery`` the route would build from ``query_string`` when FastAPI
    accepts it as written (a listing or a search), else None (the full read decides)."""
    # As Starlette reads a query string (``QueryParams``).
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    fields: dict[str, Any] = {}
    for name, value in pairs:
        reader = _READERS.get(name)
        if reader is None:
            return None
        field, read = reader
        parsed = read(value)
        if parsed is None or field in fields:
            return None
        fields[field] = parsed
    low, high = fields.get("min_price"), fields.get("max_price")
    if low is not None and high is not None and low > high:
        return None  # the route's 400
    fields["search"] = normalize_search(fields.get("search"))
    return ProductQuery(**fields)
