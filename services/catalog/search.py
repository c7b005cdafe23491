"""Search from the index: tantivy finds and ranks the matching ids, PostgreSQL reads the
rows (and orders a page by price, date or rating, as listings are ordered).

Matching, as close to the PostgreSQL path as two engines get: every word must match
(the English stem, in the name or the description; a name match weighs double), or a
name word as written close to it (one edit for words of five letters or more) or
beginning with it (three letters or more), which is what the trigram similarity on the
name gives there. Ranking is BM25 (PostgreSQL: ``ts_rank_cd`` plus the trigram
similarity), ties broken by id. Counting and candidates follow the same rules: at most
``SEARCH_CANDIDATES``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

from services.catalog.products import (
    POSTGRES_SEARCH,
    SEARCH_CANDIDATES,
    ProductQuery,
    ProductRepository,
    ProductSearch,
    ProductSort,
    SearchResult,
)
from services.catalog.rows import ProductFields
from services.catalog.search_index import IndexSnapshot, SearchIndexReader

# A query's words past this many are ignored (a search is at most 100 characters).
MAX_WORDS = 12
NAME_BOOST = 2.0
NEAR_BOOST = 0.5

_WORDS = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stopword("english"))
    .build()
)
_STEMS = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stopword("english"))
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)

# The index field each sort reads, and its direction (ties: PostgreSQL orders them).
_SORT_FIELDS: dict[ProductSort, tuple[str, tantivy.Order]] = {
    ProductSort.NEWEST: ("created_at", tantivy.Order.Desc),
    ProductSort.PRICE_ASC: ("price", tantivy.Order.Asc),
    ProductSort.PRICE_DESC: ("price", tantivy.Order.Desc),
    ProductSort.RATING: ("rating", tantivy.Order.Desc),
}
_FIELD_TYPES = {
    "created_at": tantivy.FieldType.Integer,
    "price": tantivy.FieldType.Integer,
    "rating": tantivy.FieldType.Float,
}


def _descending(hit: tuple[float, tantivy.DocAddress]) -> float:
    """A hit's place in an order by score, highest first (a key for ``bisect``)."""
    return -hit[0]


def _filter(query: tantivy.Query) -> tuple[tantivy.Occur, tantivy.Query]:
    """A clause that must match and adds nothing to the score."""
    return (tantivy.Occur.Must, tantivy.Query.const_score_query(query, 0.0))


def text_query(schema: tantivy.Schema, text: str) -> tantivy.Query | None:
    """Every word must match; None when no word is left (punctuation, stop words)."""
    words, stems = _WORDS.analyze(text)[:MAX_WORDS], _STEMS.analyze(text)[:MAX_WORDS]
    if len(words) != len(stems):
        words = stems
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
    for word, stem in zip(words, stems, strict=True):
        either: list[tuple[tantivy.Occur, tantivy.Query]] = [
            (
                tantivy.Occur.Should,
                tantivy.Query.boost_query(
                    tantivy.Query.term_query(schema, "name", stem), NAME_BOOST
                ),
            ),
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "description", stem)),
        ]
        if len(word) >= 3:
            near = tantivy.Query.fuzzy_term_query(
                schema, "name_words", word, distance=1 if len(word) >= 5 else 0, prefix=True
            )
            either.append((tantivy.Occur.Should, tantivy.Query.boost_query(near, NEAR_BOOST)))
        clauses.append((tantivy.Occur.Must, tantivy.Query.boolean_query(either)))
    if not clauses:
        return None
    return tantivy.Query.boolean_query(clauses)


def filtered_query(
    schema: tantivy.Schema,
    matches: tantivy.Query,
    query: ProductQuery,
    category_ids: list[str] | None,
) -> tantivy.Query:
    clauses = [(tantivy.Occur.Must, matches)]
    if category_ids is not None:
        clauses.append(_filter(tantivy.Query.term_set_query(schema, "category_id", category_ids)))
    if query.min_price is not None or query.max_price is not None:
        clauses.append(
            _filter(
                tantivy.Query.range_query(
                    schema, "price", tantivy.FieldType.Integer, query.min_price, query.max_price
                )
            )
        )
    if query.in_stock is not None:
        clauses.append(_filter(tantivy.Query.term_query(schema, "in_stock", query.in_stock)))
    return tantivy.Query.boolean_query(clauses)


@dataclass(frozen=True)
class IndexedSearch:
    """``ProductSearch`` over one snapshot of the index."""

    snapshot: IndexSnapshot

    @property
    def name(self) -> str:
        return f"index:{self.snapshot.generation}"

    def _id(self, address: tantivy.DocAddress) -> str:
        return self.snapshot.product_id(address)

    async def search(
        self, products: ProductRepository, query: ProductQuery, category_ids: list[str] | None
    ) -> SearchResult:
        schema = self.snapshot.schema
        matches = text_query(schema, query.search or "")
        if matches is None or category_ids == []:
            return SearchResult([], 0)
        wanted = filtered_query(schema, matches, query, category_ids)
        offset = (query.page - 1) * query.limit
        sort = query.sort or ProductSort.RELEVANCE
        rows: Sequence[ProductFields]
        if sort is ProductSort.RELEVANCE:
            hits = self.snapshot.searcher.search(wanted, SEARCH_CANDIDATES + 1, count=False).hits
            counted = len(hits)
            ids = self._ranked_page(hits, offset, query.limit)
            found = await products.rendered_by_ids(ids)
            rows = [found[i] for i in ids if i in found]
        else:
            counted = min(self._count(wanted), SEARCH_CANDIDATES + 1)
            ids, skip = self._sorted_window(wanted, sort, offset, query.limit)
            rows = await products.page_of(ids, sort, offset - skip, query.limit)
        if counted > SEARCH_CANDIDATES:
            return SearchResult(rows, SEARCH_CANDIDATES, total_exact=False)
        return SearchResult(rows, counted)

    def _count(self, query: tantivy.Query) -> int:
        found = self.snapshot.searcher.search(query, 1, count=True)
        return int(getattr(found, "count", 0) or 0)  # the stub leaves ``count`` out

    def _ranked_page(
        self, hits: list[tuple[float, tantivy.DocAddress]], offset: int, limit: int
    ) -> list[str]:
        """The page's ids by score, ties by id, among the first ``SEARCH_CANDIDATES`` of
        ``hits``: only the hits whose score the page's first or last shares (or lies
        between) have their id read. ``hits`` come by score, highest first, so those are
        one run around the page, whose ends are found by bisection (not by a pass over
        every candidate: at 100,000 products that pass was most of a first search's
        ranking time, and a step a hit, from the page outwards, still a sixth of it)."""
        candidates = min(len(hits), SEARCH_CANDIDATES)
        if offset >= candidates:
            return []
        end = min(offset + limit, candidates)
        high, low = hits[offset][0], hits[end - 1][0]
        start = bisect.bisect_left(hits, -high, 0, offset, key=_descending)
        stop = bisect.bisect_right(hits, -low, end, candidates, key=_descending)
        tied = hits[start:stop]
        ids = self.snapshot.product_ids([address for _, address in tied])
        if high == low:  # one score (the most common case): by id alone
            ordered = sorted(ids)
        else:
            by_score = sorted(zip([-score for score, _ in tied], ids, strict=True))
            ordered = [product_id for _, product_id in by_score]
        return ordered[offset - start : offset - start + limit]

    def _sorted_window(
        self, wanted: tantivy.Query, sort: ProductSort, offset: int, limit: int
    ) -> tuple[list[str], int]:
        """Ids that hold the page in ``sort``'s order, and how many matches come before
        them: the top ``offset + limit`` by the sort's field, narrowed to the values the
        page spans, plus every match equal to the last value (its ties may sort in)."""
        field, order = _SORT_FIELDS[sort]
        searcher = self.snapshot.searcher
        top = searcher.search(
            wanted, offset + limit, count=False, order_by_field=field, order=order
        )
        hits = top.hits
        if len(hits) <= offset:
            return [], 0
        first, last = hits[offset][0], hits[-1][0]
        low, high = min(first, last), max(first, last)
        before = sum(1 for value, _ in hits if value < low or value > high)
        addresses = [address for value, address in hits if low <= value <= high]
        ids = {self._id(address) for address in addresses}
        if len(hits) == offset + limit:
            ties = tantivy.Query.range_query(
                self.snapshot.schema, field, _FIELD_TYPES[field], last, last
            )
            both = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, wanted), (tantivy.Occur.Must, ties)]
            )
            total = self._count(both)
            if total:
                ids.update(self._id(a) for _, a in searcher.search(both, total, count=False).hits)
        return sorted(ids), before


class SearchEngines:
    """Which ``ProductSearch`` a request uses: the index when it is ready, else
    PostgreSQL. One per API process."""

    def __init__(self, path: Path | None) -> None:
        self.reader = SearchIndexReader(path) if path is not None else None

    def current(self) -> ProductSearch:
        snapshot = self.reader.snapshot() if self.reader is not None else None
        return IndexedSearch(snapshot) if snapshot is not None else POSTGRES_SEARCH

    def current_name(self) -> str:
        """The current engine's name: what a kept search answer was ranked by, if current."""
        return self.current().name
