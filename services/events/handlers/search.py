"""``product.changed`` → the search index re-reads the product (``search_index``)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from services.catalog.indexing import SearchIndexing
from services.events.subscribers import DomainEvent, Subscriber


def search_index_subscriber(indexing: SearchIndexing | None) -> Subscriber:
    """Idempotent: the document is rebuilt from the row as it is now, so a redelivered
    or late event writes the same document. With the index switched off, nothing."""

    async def handle(event: DomainEvent, session: AsyncSession) -> None:
        if indexing is not None:
            await indexing.refresh(session, [event.aggregate_id])

    return Subscriber("search_index", frozenset({EventType.PRODUCT_CHANGED}), handle)
