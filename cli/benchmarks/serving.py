"""``shop bench startup``, ``http`` and ``catalog``: how fast the stack starts and serves."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable


def bench_startup(
    runs: Annotated[int, typer.Option(min=1, max=10, help="Warm restarts to time.")] = 3,
) -> None:
    """Time `shop dev` from launch to ready (cold and warm) and to stop; weigh its processes."""
    from bench.environment import header
    from bench.startup import run

    for line in [*header(None, runs=runs), *run(runs)]:
        console.print(line)


def bench_http(
    data_dir: DataDir = None,
    path: Annotated[str, typer.Option(help="Path to request.")] = "/health",
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="Per workload.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, max=200, help="Clients, after one.")] = 32,
    seconds: Annotated[float, typer.Option(min=1, max=300, help="Per workload, at most.")] = 20,
) -> None:
    """Keep-alive throughput and latency of one endpoint of the running stack (`shop
    dev`), with one client and with `--concurrency`, next to a FastAPI hello world in as
    many processes as the stack's API, in the same run."""
    from bench.environment import header
    from bench.http import run

    settings = settings_for(data_dir)
    url = f"http://127.0.0.1:{settings.shop_api_port}{path}"
    for line in [
        *header(settings, requests=requests, concurrency=concurrency, seconds=seconds),
        *run(url, requests, concurrency, settings.shop_api_workers, seconds),
    ]:
        console.print(line)


def bench_catalog(
    data_dir: DataDir = None,
    url: Annotated[str | None, typer.Option(help="API base URL (default: the stack's).")] = None,
    duration: Annotated[float, typer.Option(min=1, max=300, help="Seconds per workload.")] = 20,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 32,
    sizes: Annotated[
        str, typer.Option(help="Catalogue sizes for the search-scaling part; '' skips it.")
    ] = "1000,100000",
    compare_hello: Annotated[
        bool,
        typer.Option(
            "--compare-hello",
            help="Also serve a FastAPI hello world (uvicorn, httptools, uvloop) in as many "
            "processes as the API's and measure it under the same load.",
        ),
    ] = False,
    generators: Annotated[int, typer.Option(min=1, max=16, help="Load generator processes.")] = 2,
) -> None:
    """Listing, filtered listing, search and product detail: throughput and latency under
    keep-alive clients; with --compare-hello, each as a share of a hello world's; then
    search latency at each catalogue size, on a scratch database seeded for the purpose."""
    import httpx

    from bench.catalog import (
        measure,
        measure_hello,
        per_request_line,
        product_count,
        product_keys,
        search_scaling,
    )
    from bench.catalog import (
        table as figures_table,
    )
    from bench.environment import header
    from bench.stack_cost import stack_processes

    settings = settings_for(data_dir)
    base = url or settings.api_base_url
    for line in header(
        settings,
        duration=duration,
        concurrency=concurrency,
        sizes=sizes,
        generators=generators,
        load_average="/".join(f"{x:.2f}" for x in os.getloadavg()),
    ):
        console.print(line)
    try:
        total = asyncio.run(product_count(base))
        keys = asyncio.run(product_keys(base))
    except (httpx.HTTPError, DependencyUnavailable) as exc:
        raise fail(f"the API at {base} did not answer: {exc}") from None
    if not keys:  # the product detail workload draws from them
        seed = "shop seed --products N" + (f" --data-dir {data_dir}" if data_dir else "")
        raise fail(f"the catalogue at {base} has no products: run `{seed}` first (e.g. N=2000)")
    console.print(f"catalogue of {total:,} products at {base}")
    results = measure(base, keys, duration, concurrency, generators, stack_processes(base))
    hello = None
    if compare_hello:
        processes = settings.shop_api_workers
        console.print(f"hello world: uvicorn, httptools, uvloop, {processes} process(es)")
        hello = measure_hello(processes, duration, concurrency, generators)
    for line in figures_table(results, hello):
        console.print(line)
    wanted = [int(s) for s in sizes.split(",") if s.strip()]
    if wanted:
        console.print("search latency by catalogue size (scratch database):")
        try:
            points = asyncio.run(
                search_scaling(settings, wanted, min(duration, 10), concurrency, generators)
            )
        except DependencyUnavailable as exc:  # its own API process did not serve
            raise fail(str(exc)) from None
        for point in points:
            r = point.result
            console.print(
                f"  {point.products:>9,} products: {r.rps:7.0f} req/s   "
                f"p50 {r.percentile(50) * 1000:6.1f} ms   p95 {r.percentile(95) * 1000:6.1f} ms"
                f"   p99 {r.percentile(99) * 1000:6.1f} ms   {dict(sorted(r.statuses.items()))}"
            )
            if r.server_cpu and r.requests:
                console.print(
                    "    " + per_request_line("CPU ms per search", r.server_cpu, r.requests)
                )
            if point.spread:
                console.print(
                    f"    connections per API process: {'/'.join(map(str, point.spread))}"
                )
        if len(points) >= 2 and points[0].result.percentile(95):
            first, last = points[0], points[-1]
            ratio = last.result.percentile(95) / first.result.percentile(95)
            console.print(
                f"  search p95 at {last.products:,} is {ratio:.2f}x its value at {first.products:,}"
            )
            api = [
                p.result.server_cpu.get("API", 0) / max(p.result.requests, 1) for p in (first, last)
            ]
            if api[0]:
                console.print(
                    f"  API CPU per search at {last.products:,} is {api[1] / api[0]:.2f}x "
                    f"its value at {first.products:,}"
                )
