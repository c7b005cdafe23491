"""The catalogue's search index: tantivy, in process, one directory on disk.

One writer at a time: the worker's ``search_index`` subscriber, ``shop search reindex``
and the rebuild at worker start, each under a file lock beside the directory (and an
asyncio lock within a process). Every API process opens the index read-only and reloads
it when a commit changed it (``SearchIndexReader``). The index holds what a search
filters and sorts on; the rows a page shows are read from PostgreSQL by id.

The index is *ready* once a full build has written its marker file with this code's
``SCHEMA_VERSION``; until then searches use PostgreSQL full-text search.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import tantivy

from models.catalog import Product

if TYPE_CHECKING:
    from services.catalog.search import WordPlan

log = logging.getLogger(__name__)

# Bump when the schema or what a document holds changes: workers rebuild at start.
# 2: ``name_words``, the name's words as written, for near matches.
SCHEMA_VERSION = 2
MARKER = "shopweave-search.json"
# tantivy's floor is 15 MB per indexing thread; one thread (two cores, shared).
WRITER_HEAP_BYTES = 64_000_000
# How long a writer waits for another process's write (a rebuild takes seconds).
LOCK_WAIT_SECONDS = 120.0
NO_RATING = -1.0


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    # en_stem: lower case, English (Porter) stems, as PostgreSQL's 'english' config.
    builder.add_text_field("name", tokenizer_name="en_stem")
    # The name's words as written (lower case, no stems): a typo is one edit from the word
    # the shopper meant, not from its stem ("hedphones" is two from "headphon").
    builder.add_text_field("name_words", tokenizer_name="default")
    builder.add_text_field("description", tokenizer_name="en_stem")
    builder.add_text_field("category_id", tokenizer_name="raw")
    builder.add_integer_field("price", indexed=True, fast=True)
    builder.add_boolean_field("in_stock", indexed=True, fast=True)
    builder.add_integer_field("created_at", indexed=True, fast=True)
    builder.add_float_field("rating", indexed=True, fast=True)
    return builder.build()


SCHEMA = build_schema()


def average_rating(product: Product) -> float:
    """As SQL computes it (float8 division), or ``NO_RATING`` (sorted last)."""
    if not product.rating_count:
        return NO_RATING
    return float(product.rating_sum) / product.rating_count


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(product: Product) -> int:
    """Exact (no float on the way): the newest-first sort's ties must match SQL's."""
    return (product.created_at - EPOCH) // timedelta(microseconds=1)


def document(product: Product, available: int) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("id", product.id)
    doc.add_text("name", product.name)
    doc.add_text("name_words", product.name)
    doc.add_text("description", product.description or "")
    doc.add_text("category_id", product.category_id or "")
    doc.add_integer("price", product.price)
    doc.add_boolean("in_stock", available > 0)
    doc.add_integer("created_at", epoch_micros(product))
    doc.add_float("rating", average_rating(product))
    return doc


def read_marker(path: Path) -> dict[str, Any] | None:
    """The last full build's marker, if it is this code's schema."""
    try:
        marker: dict[str, Any] = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("schemaVersion") == SCHEMA_VERSION else None


class IndexBusy(RuntimeError):
    """Another process held the index's write lock for too long (retried by the relay)."""


Searchable = Sequence[tuple[Product, int]]


class SearchIndexWriter:
    """Writes the index: a product's document replaced or removed, or a full rebuild."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    def ready(self) -> bool:
        return read_marker(self.path) is not None

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        async with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.parent / f".{self.path.name}.lock"
            with lock_path.open("a") as handle:
                waited = 0.0
                while True:
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if waited >= LOCK_WAIT_SECONDS:
                            raise IndexBusy(f"{lock_path} is held by another writer") from None
                        await asyncio.sleep(0.05)
                        waited += 0.05
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    async def apply(self, present: Searchable, absent: Sequence[str]) -> bool:
        """Replace the documents of ``present`` and remove those of ``absent``, in one
        commit. False (nothing written) while the index is not built: the build to come
        reads every product anyway."""
        async with self._exclusive():
            if not self.ready():
                return False
            await asyncio.to_thread(self._apply, present, absent)
            return True

    def _apply(self, present: Searchable, absent: Sequence[str]) -> None:
        index = tantivy.Index.open(str(self.path))
        writer = index.writer(WRITER_HEAP_BYTES, 1)
        for product_id in [*absent, *(p.id for p, _ in present)]:
            writer.delete_documents_by_term("id", product_id)
        for product, available in present:
            writer.add_document(document(product, available))
        writer.commit()
        writer.wait_merging_threads()

    async def rebuild(
        self, batches: AsyncIterator[Searchable], *, unless_ready: bool = False
    ) -> int:
        """Every product from ``batches``, into a fresh index, made ready at the end.
        Readers keep answering from the old index (or PostgreSQL) until the marker.
        ``unless_ready``: nothing if the index is ready by the time the lock is held
        (workers starting together build it once). Returns how many were indexed."""
        async with self._exclusive():
            if unless_ready and self.ready():
                return 0
            started = time.monotonic()
            await asyncio.to_thread(self._fresh)
            index = tantivy.Index.open(str(self.path))
            writer = index.writer(WRITER_HEAP_BYTES, 1)
            count = 0
            try:
                async for batch in batches:
                    await asyncio.to_thread(self._add_all, writer, batch)
                    count += len(batch)
                await asyncio.to_thread(writer.commit)
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.rollback()
                raise
            finally:
                await asyncio.to_thread(writer.wait_merging_threads)
            marker = {"schemaVersion": SCHEMA_VERSION, "build": uuid.uuid4().hex, "products": count}
            temporary = self.path / f"{MARKER}.tmp"
            temporary.write_text(json.dumps(marker))
            os.replace(temporary, self.path / MARKER)
            log.info(
                "search index built: %d products in %.1f s at %s",
                count,
                time.monotonic() - started,
                self.path,
            )
            return count

    def _fresh(self) -> None:
        # The marker goes first: readers fall back to PostgreSQL until the new one.
        with contextlib.suppress(FileNotFoundError):
            (self.path / MARKER).unlink()
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        tantivy.Index(SCHEMA, path=str(self.path), reuse=False)

    @staticmethod
    def _add_all(writer: tantivy.IndexWriter, batch: Searchable) -> None:
        for product, available in batch:
            writer.add_document(document(product, available))


@dataclass(frozen=True)
class IndexSnapshot:
    """One reader's view: a searcher and a name for its generation (cache keys)."""

    searcher: tantivy.Searcher
    schema: tantivy.Schema
    generation: str
    # Product ids of the documents read so far, a list a segment by doc (None: not read
    # yet): a snapshot's addresses never change, and ranking a page reads the id of every
    # hit that ties with it (a median of 300 documents a search at 100,000 products, 4.5
    # ms to read from the documents). Lists, not a dict by (segment, doc): a lookup is
    # two indexings, not a tuple built and hashed (docs/benchmarks.md *Catalogue reads*), and no key
    # object per id for the collector to track.
    ids: list[list[str | None]] = field(default_factory=list, compare=False, repr=False)
    # How each search word is asked of this snapshot, by (word, stem): what a plan was
    # checked against (its documents) is this snapshot's alone.
    word_plans: dict[tuple[str, str], WordPlan] = field(
        default_factory=dict, compare=False, repr=False
    )
    # How often each word not yet planned was searched in this snapshot.
    word_asks: dict[tuple[str, str], int] = field(default_factory=dict, compare=False, repr=False)

    def count(self, query: tantivy.Query) -> int:
        """How many live documents ``query`` matches."""
        found = self.searcher.search(query, 1, count=True)
        return int(getattr(found, "count", 0) or 0)  # the stub leaves ``count`` out

    def product_id(self, address: tantivy.DocAddress) -> str:
        return self.product_ids([address])[0]

    def product_ids(self, addresses: Sequence[tantivy.DocAddress]) -> list[str]:
        """The product id of each document, each read once a snapshot (a page's tied
        hits: hundreds)."""
        segments = self.ids
        try:
            known = [segments[a.segment_ord][a.doc] for a in addresses]
        except IndexError:  # a segment or a document past those seen so far
            self._make_room(addresses)
            known = [segments[a.segment_ord][a.doc] for a in addresses]
        if None not in known:
            return cast(list[str], known)
        return [
            found if found is not None else self._read(address)
            for found, address in zip(known, addresses, strict=True)
        ]

    def _make_room(self, addresses: Iterable[tantivy.DocAddress]) -> None:
        segments = self.ids
        for address in addresses:
            segment, doc = address.segment_ord, address.doc
            if segment >= len(segments):
                segments.extend([] for _ in range(segment + 1 - len(segments)))
            known = segments[segment]
            if doc >= len(known):
                known.extend([None] * (doc + 1 - len(known)))

    def _read(self, address: tantivy.DocAddress) -> str:
        found = str(self.searcher.doc(address)["id"][0])
        self.ids[address.segment_ord][address.doc] = found
        return found


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class SearchIndexReader:
    """An API process's read-only view of the index, reloaded when a commit changed it
    (a ``stat`` of two small files per search) and reopened after a rebuild."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: tantivy.Index | None = None
        self._marker: tuple[int, int, int] | None = None
        self._build = ""
        self._meta: tuple[int, int, int] | None = None
        self._snapshot: IndexSnapshot | None = None

    def snapshot(self) -> IndexSnapshot | None:
        """The current view, or None when the index is not ready (search in PostgreSQL)."""
        marker = _signature(self.path / MARKER)
        if marker is None:
            self._index = self._snapshot = None
            self._marker = None
            return None
        try:
            if marker != self._marker or self._index is None:
                built = read_marker(self.path)
                if built is None:
                    return None
                index = tantivy.Index.open(str(self.path))
                index.config_reader("Manual", 0)
                self._index, self._marker, self._build = index, marker, str(built["build"])
                self._meta = self._snapshot = None
            meta = _signature(self.path / "meta.json")
            if meta != self._meta or self._snapshot is None:
                self._index.reload()
                self._meta = meta
                self._snapshot = IndexSnapshot(
                    self._index.searcher(),
                    self._index.schema,
                    f"{self._build}:{meta[1] if meta else 0}",
                )
        except (OSError, ValueError) as exc:
            log.warning("search index at %s unreadable, searching PostgreSQL: %s", self.path, exc)
            self._index = self._snapshot = None
            self._marker = None
            return None
        return self._snapshot
