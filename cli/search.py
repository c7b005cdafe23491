"""``shop search``: the catalogue's search index."""

from __future__ import annotations

import asyncio

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable

search_app = typer.Typer(help="The catalogue's search index.", no_args_is_help=True)


@search_app.command("reindex")
def search_reindex(data_dir: DataDir = None) -> None:
    """Rebuild the search index from PostgreSQL (SEARCH_INDEX_DIR, default
    DATA_DIR/search-index). Searches keep answering meanwhile; changes committed during
    the rebuild reach the index through their product.changed events."""
    from core.db import create_engine, create_session_factory
    from services.catalog.indexing import SearchIndexing

    settings = settings_for(data_dir)
    indexing = SearchIndexing.from_settings(settings)
    if indexing is None:
        raise fail("the search index is switched off (SEARCH_INDEX=false)")

    async def rebuild() -> int:
        engine = create_engine(settings)
        try:
            return await indexing.rebuild(create_session_factory(engine))
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(rebuild())
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
    console.print(f"search index rebuilt: {count} products at {settings.search_index_path}")
