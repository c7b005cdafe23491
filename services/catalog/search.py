"""Search from the index: tantivy finds and ranks the matching ids, PostgreSQL reads the
rows (and orders a page by price, date or rating, as listings are ordered).

Matching, as close to the PostgreSQL path as two engines get: every word must match
(the English stem, in the name or the description; a name match weighs double), or a
name word as written close to it (one edit for words of five letters or more) or
beginning with it (three letters or more), which is what the trigram similarity on the
name gives there. Ranking is BM25 (PostgreSQL: ``ts_rank_cd`` plus the trigram
similarity), ties broken by id. Counting and candidates follow the same rules: at most
``SEARCH_CANDIDATES``.

A word's near clause is asked of each snapshot in the cheapest form found to match the
same documents (``checked_plan``, by counting, once a word is searched often enough in
a snapshot): the same
results and scores as tantivy's fuzzy query, at 100,000 products about a quarter less
of tantivy's time a search (docs/benchmarks.md *Catalogue reads*).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import tantivy

from services.catalog.product_query import (
    SEARCH_CANDIDATES,
    ProductQuery,
    ProductSort,
    SearchResult,
)
from services.catalog.product_repository import ProductRepository
from services.catalog.products import POSTGRES_SEARCH, ProductSearch
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


@dataclass(frozen=True)
class WordPlan:
    """How one search word's near clause (its near words in the name, at a constant
    ``NEAR_BOOST``) is asked: ``near`` None when it matches nothing; ``optional`` when
    every document it matches also matches the word's stem, so it only adds to their
    score (tantivy then looks it up in those documents rather than iterating it)."""

    near: tantivy.Query | None
    optional: bool = False


# A word's near clause is replaced by at most this many terms (a union of many term
# lists can cost more than the bit set tantivy's fuzzy query gathers).
NEAR_TERMS = 4
# Words planned (and words counted) per snapshot; past it a word is asked as written.
WORD_PLANS = 4_096
# A word is planned on its this-many-th search in a snapshot, asked as written before:
# planning costs what six or seven searches of the word save (0.36 ms at 100,000
# products, 0.06 at 1,000), and every write to the index starts a new snapshot.
PLAN_AFTER = 8
Planner = Callable[[str, str], WordPlan]


def _fuzzy(schema: tantivy.Schema, word: str) -> tantivy.Query:
    """The name's words as written that begin with ``word``, or (five letters or more)
    with a word one edit from it (a transposition counts one)."""
    distance = 1 if len(word) >= 5 else 0
    return tantivy.Query.fuzzy_term_query(
        schema, "name_words", word, distance=distance, prefix=True
    )


def plain_plan(schema: tantivy.Schema, word: str, stem: str) -> WordPlan:
    """The near clause as written: tantivy's fuzzy prefix query (a constant score)."""
    if len(word) < 3:
        return WordPlan(None)
    return WordPlan(tantivy.Query.boost_query(_fuzzy(schema, word), NEAR_BOOST))


def _stem_clauses(schema: tantivy.Schema, stem: str) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    """The stem in the name (weighing double) or in the description."""
    name = tantivy.Query.term_query(schema, "name", stem)
    return [
        (tantivy.Occur.Should, tantivy.Query.boost_query(name, NAME_BOOST)),
        (tantivy.Occur.Should, tantivy.Query.term_query(schema, "description", stem)),
    ]


def _both(first: tantivy.Query, second: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, first), (tantivy.Occur.Must, second)])


def checked_plan(snapshot: IndexSnapshot, word: str, stem: str) -> WordPlan:
    """``plain_plan``'s near clause in a cheaper form that matches the same documents of
    this snapshot with the same score, each form checked by counting: none when it
    matches nothing; the terms beginning with the word (its own, or the one a cut-off
    word begins) when they match exactly its documents, as constant-score term queries
    (no automaton, no bit set); optional when the stem's clauses match all its
    documents. Kept per snapshot: counting costs a few near clauses' worth once a word."""
    plain = plain_plan(snapshot.schema, word, stem)
    if plain.near is None:
        return plain
    schema, count = snapshot.schema, snapshot.count
    fuzzy = _fuzzy(schema, word)
    found = count(fuzzy)
    if found == 0:
        return WordPlan(None)
    near = plain.near
    terms = [
        term
        for term, _ in snapshot.searcher.terms_with_prefix("name_words", word, limit=NEAR_TERMS + 1)
    ]
    if 0 < len(terms) <= NEAR_TERMS:
        scored = [
            tantivy.Query.const_score_query(
                tantivy.Query.term_query(schema, "name_words", term, index_option="basic"),
                NEAR_BOOST,
            )
            for term in terms
        ]
        # The best of constant scores is that constant, as the fuzzy query's is.
        terms_query = (
            scored[0] if len(scored) == 1 else tantivy.Query.disjunction_max_query(scored, 0.0)
        )
        if count(terms_query) == found == count(_both(fuzzy, terms_query)):
            near = terms_query
    stems = tantivy.Query.boolean_query(_stem_clauses(schema, stem))
    return WordPlan(near, optional=count(_both(near, stems)) == found)


def snapshot_plan(snapshot: IndexSnapshot, word: str, stem: str) -> WordPlan:
    """``checked_plan``, once per word and snapshot, from the word's ``PLAN_AFTER``-th
    search in it; ``plain_plan`` until then."""
    key = (word, stem)
    plans, asks = snapshot.word_plans, snapshot.word_asks
    plan = plans.get(key)
    if plan is None:
        asked = asks.get(key, 0) + 1
        if asked < PLAN_AFTER or len(plans) >= WORD_PLANS:
            if key in asks or len(asks) < WORD_PLANS:
                asks[key] = asked
            return plain_plan(snapshot.schema, word, stem)
        asks.pop(key, None)
        plan = plans[key] = checked_plan(snapshot, word, stem)
    return plan


def text_query(
    schema: tantivy.Schema, text: str, plan: Planner | None = None
) -> tantivy.Query | None:
    """Every word must match; None when no word is left (punctuation, stop words).
    ``plan`` says how each word's near clause is asked (``plain_plan`` by default): the
    same documents and scores either way."""
    words, stems = _WORDS.analyze(text)[:MAX_WORDS], _STEMS.analyze(text)[:MAX_WORDS]
    if len(words) != len(stems):
        words = stems
    planned = plan or partial(plain_plan, schema)
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
    for word, stem in zip(words, stems, strict=True):
        either = _stem_clauses(schema, stem)
        found = planned(word, stem)
        if found.near is None:
            matches = tantivy.Query.boolean_query(either)
        elif found.optional:
            # Scored as (name + description) + near, the order the union below adds in.
            matches = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, tantivy.Query.boolean_query(either)),
                    (tantivy.Occur.Should, found.near),
                ]
            )
        else:
            matches = tantivy.Query.boolean_query([*either, (tantivy.Occur.Should, found.near)])
        clauses.append((tantivy.Occur.Must, matches))
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
        matches = text_query(schema, query.search or "", partial(snapshot_plan, self.snapshot))
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
            counted = min(self.snapshot.count(wanted), SEARCH_CANDIDATES + 1)
            ids, skip = self._sorted_window(wanted, sort, offset, query.limit)
            rows = await products.page_of(ids, sort, offset - skip, query.limit)
        if counted > SEARCH_CANDIDATES:
            return SearchResult(rows, SEARCH_CANDIDATES, total_exact=False)
        return SearchResult(rows, counted)

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
            total = self.snapshot.count(both)
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
