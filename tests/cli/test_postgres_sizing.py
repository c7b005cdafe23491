"""``shop dev``'s PostgreSQL is sized to the machine, and POSTGRES_* settings override it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from cli.stack.postgres import SUPERUSER, EmbeddedPostgres, ServerSizing, sizing_for
from cli.stack.process import free_port
from core.settings import Settings


@pytest.mark.parametrize(
    ("memory_mb", "shared", "cache"),
    [
        (24_576, 2048, 12_288),  # capped at 2 GB
        (4096, 512, 2048),  # an eighth
        (512, 128, 256),  # never under PostgreSQL's own 128 MB
    ],
)
def test_sized_to_the_machines_memory(memory_mb: int, shared: int, cache: int) -> None:
    assert sizing_for(Settings(), memory_mb) == ServerSizing(shared, cache, 1.1)


def test_settings_override_the_sizing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_SHARED_BUFFERS_MB", "300")
    monkeypatch.setenv("POSTGRES_EFFECTIVE_CACHE_SIZE_MB", "900")
    monkeypatch.setenv("POSTGRES_RANDOM_PAGE_COST", "2.5")
    assert sizing_for(Settings(), 24_576) == ServerSizing(300, 900, 2.5)


async def _show(port: int, names: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=SUPERUSER, database="postgres")
    try:
        return {name: await conn.fetchval(f"SHOW {name}") for name in names}
    finally:
        await conn.close()


def test_the_running_server_has_the_sizing_asked_for(tmp_path: Path) -> None:
    # Small figures, unlike PostgreSQL's defaults (128MB, 4GB, 4): the suite's other
    # servers run beside this one.
    sizing = ServerSizing(shared_buffers_mb=48, effective_cache_size_mb=1536, random_page_cost=1.1)
    pg = EmbeddedPostgres(
        tmp_path / "pg", free_port(), log_path=tmp_path / "pg.log", durable=False, sizing=sizing
    )
    pg.start()
    try:
        shown = asyncio.run(
            _show(pg.port, ["shared_buffers", "effective_cache_size", "random_page_cost"])
        )
    finally:
        pg.stop()
    assert shown == {
        "shared_buffers": "48MB",
        "effective_cache_size": "1536MB",
        "random_page_cost": "1.1",
    }
