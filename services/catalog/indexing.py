"""Keeping the search index in step with PostgreSQL: one product's document re-read
(the ``search_index`` subscriber of ``product.changed``), or every product (``shop search
reindex``, ``shop seed``, a worker starting on a missing or outdated index)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import SessionFactory
from core.settings import Settings
from services.catalog.product_repository import ProductRepository
from services.catalog.search_index import Searchable, SearchIndexWriter

log = logging.getLogger(__name__)

REBUILD_BATCH = 5_000


class SearchIndexing:
    def __init__(self, writer: SearchIndexWriter) -> None:
        self.writer = writer

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchIndexing | None:
        """None when the index is switched off (``SEARCH_INDEX=false``)."""
        return cls(SearchIndexWriter(settings.search_index_path)) if settings.search_index else None

    async def refresh(self, session: AsyncSession, product_ids: Sequence[str]) -> bool:
        """Re-read these products and replace (or remove) their documents. Idempotent:
        the document follows the row as it is now, whatever order events come in."""
        present = await ProductRepository(session).searchable(ids=product_ids)
        found = {product.id for product, _ in present}
        absent = [p for p in product_ids if p not in found]
        return await self.writer.apply(present, absent)

    async def rebuild(self, sessions: SessionFactory, *, unless_ready: bool = False) -> int:
        """Every active product, into a fresh index. Changes committed meanwhile reach it
        through their events, which wait for the rebuild's lock."""

        async def batches() -> AsyncIterator[Searchable]:
            after = ""
            async with sessions() as session:
                while True:
                    batch = await ProductRepository(session).searchable(
                        after_id=after, limit=REBUILD_BATCH
                    )
                    if not batch:
                        return
                    yield batch
                    after = batch[-1][0].id

        return await self.writer.rebuild(batches(), unless_ready=unless_ready)

    async def ensure_built(self, sessions: SessionFactory) -> None:
        """At worker start: rebuild when the index is missing or of another schema."""
        if self.writer.ready():
            return
        log.info("search index missing or outdated at %s: rebuilding", self.writer.path)
        try:
            await self.rebuild(sessions, unless_ready=True)
        except Exception:
            log.exception("search index rebuild failed; searches use PostgreSQL")
