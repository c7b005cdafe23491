"""``shop bench catalog``'s parts: the load generator processes against the hello world,
a chunked answer, the workloads' targets, the table, and the refusal of a catalogue with
no product. Nothing here is timed."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from functools import partial

import asyncpg
import pytest
from typer.testing import CliRunner

from bench.catalog import (
    HELLO,
    _run,
    _spread_run,
    _until_serving,
    api_process,
    settle,
    table,
    workloads,
)
from bench.http import hello_world
from bench.load import GeneratedLoad, _read_response, run_load_processes
from bench.scratch import asyncpg_dsn, scratch_database
from bench.stack_cost import stack_processes
from cli.main import app
from cli.stack.process import free_port
from core.db import require_database_url
from core.errors import DependencyUnavailable
from core.settings import Settings


def test_the_generators_load_the_hello_world_and_count_its_answers() -> None:
    with hello_world(1) as url:
        hello = run_load_processes(
            "hello world", url, HELLO, concurrency=3, duration=0.3, start_delay=0.3
        )
    assert hello.requests > 0
    assert hello.statuses == {200: hello.requests}
    assert len(hello.latencies) == hello.requests
    assert len(hello.generator_cpu) == 2  # three clients over two processes
    missing = GeneratedLoad("missing", 4, 1.0, 2, [0.001] * 4, {404: 4})
    lines = table([missing], hello)
    assert "share of hello" in lines[0]
    assert lines[1].startswith("missing")
    assert lines[2].startswith("hello world")


def test_a_run_tells_how_its_connections_were_spread_over_the_servers_processes() -> None:
    """Every keep-alive client's connection is counted once, on the process holding it,
    the most crowded first (uvicorn's workers race to accept them)."""
    with hello_world(2) as url:
        cpu = stack_processes(url)
        run = partial(_run, "hello world", url, HELLO, cpu, 1.0, 6, 2)
        result, spread = _spread_run(run, cpu, url)
    assert result.requests > 0
    assert sum(spread) == 6, spread
    assert 1 <= len(spread) <= 2, spread
    assert spread == sorted(spread, reverse=True)


def test_a_chunked_answer_is_read_to_its_end() -> None:
    async def read() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\nHTTP/1.1 204"
        )
        status = await _read_response(reader)
        return status, await reader.read(12)

    assert asyncio.run(read()) == (200, b"HTTP/1.1 204")


def test_an_answer_with_a_length_is_read_to_its_end() -> None:
    async def read() -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\n"
            b'Content-Length: 9\r\n\r\n{"a": 1}\nHTTP/1.1 200'
        )
        status = await _read_response(reader)
        return status, await reader.read(12)

    assert asyncio.run(read()) == (404, b"HTTP/1.1 200")


def test_the_workloads_draw_from_a_wide_space() -> None:
    targets = workloads(["a-slug", "b-slug"])
    assert list(targets) == ["listing", "filtered listing", "search", "product detail"]
    for name, factory in targets.items():
        draw = factory(random.Random(1))
        drawn = {draw() for _ in range(50)}
        assert all(t.startswith("/api/products") for t in drawn), name
        assert len(drawn) > 1, name
    detail = targets["product detail"](random.Random(2))
    assert {detail() for _ in range(50)} == {"/api/products/a-slug", "/api/products/b-slug"}
    empty = GeneratedLoad("x", 0, 0.0, 1, [], {})
    assert empty.rps == 0.0


async def test_a_bulk_load_is_settled_before_search_is_measured(settings: Settings) -> None:
    """The catalogue's tables are vacuumed and analysed (and the dirty pages written out)
    before a size is measured, so that the write-back of the load is not measured."""
    conn = await asyncpg.connect(asyncpg_dsn(require_database_url(settings)))
    try:
        before = await conn.fetchval("SELECT num_requested FROM pg_stat_checkpointer")
        await settle(settings)
        vacuumed = await conn.fetch(
            "SELECT relname FROM pg_stat_user_tables"
            " WHERE relname IN ('products', 'stock_levels')"
            " AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
        )
        # The checkpointer wakes the CHECKPOINT's caller before it reports its counters to
        # the statistics, so the count may show a moment after ``settle`` returns.
        after = before
        for _ in range(100):
            after = await conn.fetchval("SELECT num_requested FROM pg_stat_checkpointer")
            if after > before:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert sorted(r["relname"] for r in vacuumed) == ["products", "stock_levels"]
    assert after > before


async def test_an_unseeded_catalogue_is_one_line_saying_to_seed_it(settings: Settings) -> None:
    """Against a stack nobody seeded (a migrated database, no product) the bench stops
    before measuring, in one line naming `shop seed`: the product detail workload drew
    its products from none, an IndexError in a load generator."""
    async with scratch_database(settings) as empty, api_process(empty) as base:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["bench", "catalog", "--url", base, "--duration", "1", "--sizes", ""],
        )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.stderr.strip().splitlines() == [
        f"error: the catalogue at {base} has no products: run `shop seed --products N` "
        "first (e.g. N=2000)"
    ]


async def test_a_scratch_database_leaves_the_migration_log_as_it_was(settings: Settings) -> None:
    """The scratch database is migrated quietly, and the ``alembic`` logger is left at
    its level: it was left at WARNING, and the next migrations of the process (a test of
    ``logged_to_file``, run after a bench test in one worker) logged nothing."""
    alembic = logging.getLogger("alembic")
    before = alembic.level
    async with scratch_database(settings):
        pass
    assert alembic.level == before


async def test_an_api_process_that_exits_is_an_error_not_a_url() -> None:
    """A benchmark's own API process that dies before serving is named as such: it was
    handed out after 20 s of trying anyway, and the bench then failed on "did not
    answer" (a loaded CI machine started it too slowly)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
    await proc.wait()
    with pytest.raises(DependencyUnavailable, match="exited with 3"):
        await _until_serving(proc, f"http://127.0.0.1:{free_port()}")
