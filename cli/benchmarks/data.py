"""``shop bench events`` and ``analytics``: the event relay's delivery and the analytics
endpoints over millions of events."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.options import DataDir, console, err_console, fail, settings_for
from core.errors import DependencyUnavailable


def bench_events(
    data_dir: DataDir = None,
    events: Annotated[int, typer.Option(min=1, max=1_000_000, help="Events in the load.")] = 2000,
    rate: Annotated[
        float, typer.Option(min=1, max=100_000, help="Events written per second.")
    ] = 200,
    aggregates: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Aggregates the load spreads over.")
    ] = 200,
    idle_events: Annotated[
        int, typer.Option("--idle-events", min=1, max=1000, help="Events one at a time.")
    ] = 30,
) -> None:
    """Events delivered per second end to end by the running stack's relay (`shop dev`),
    and the lag from commit to handler, idle and under load."""
    from bench.environment import header
    from bench.events import BenchError
    from bench.events import run as run_events

    settings = settings_for(data_dir)
    try:
        results = asyncio.run(
            run_events(
                settings,
                events=events,
                rate=rate,
                aggregates=aggregates,
                idle_events=idle_events,
                progress=lambda message: err_console.print(message),
            )
        )
    except DependencyUnavailable as exc:
        raise fail(f"the stack did not answer: {exc}") from None
    except BenchError as exc:
        raise fail(str(exc)) from None
    lines = header(
        settings,
        events=events,
        rate=rate,
        aggregates=aggregates,
        idle_events=idle_events,
        subscriber="relay_probe",
    )
    for line in [*lines, *(line for result in results for line in result.lines())]:
        console.print(line)


def _sizes(value: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in value.split(",") if part.strip()})
    except ValueError:
        raise fail(f"--events takes comma-separated counts, not {value!r}") from None
    if not sizes or sizes[0] < 1:
        raise fail("--events takes counts of at least 1, e.g. 1000000,10000000")
    return sizes


def bench_analytics(
    data_dir: DataDir = None,
    events: Annotated[
        str, typer.Option(help="Event counts to load in turn, growing one table.")
    ] = "1000000,10000000",
    people: Annotated[int, typer.Option(min=1, max=10_000_000, help="People acting.")] = 100_000,
    products: Annotated[
        int, typer.Option(min=1, max=100_000, help="Catalogue the events name.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the generated events.")] = 2026,
    requests: Annotated[
        int, typer.Option(min=2, max=100_000, help="Requests per endpoint and size.")
    ] = 200,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Requests in flight.")] = 4,
    keep_database: Annotated[
        str | None,
        typer.Option(
            help="Keep the scratch database as shop_bench_NAME and reuse it: sizes it "
            "already holds are timed, not loaded again."
        ),
    ] = None,
    defer_indexes: Annotated[
        bool,
        typer.Option(
            help="Drop the events' indexes for each load and build them after: faster, "
            "but not the COPY rate ingestion would see."
        ),
    ] = False,
    load_workers: Annotated[
        int, typer.Option(min=1, max=16, help="Processes drawing the events side by side.")
    ] = 1,
    api_workers: Annotated[
        int | None,
        typer.Option(min=1, max=16, help="Scratch API processes (default SHOP_API_WORKERS)."),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Seconds to wait for each answer; a request without one is counted "
            "against its endpoint and the run goes on.",
        ),
    ] = 60.0,
    fail_on_unanswered: Annotated[
        bool,
        typer.Option(
            help="Exit with status 1 if any request went without an answer (by default "
            "the run reports them and exits 0)."
        ),
    ] = False,
) -> None:
    """Load analytics events (1 and 10 million by default, for 100,000 people over 90 days)
    into a scratch database on the running stack's PostgreSQL, then time the dashboard,
    funnel and retention endpoints at each size against a ceiling (`GET /health`); prints
    the load's events/s and the table and index sizes."""
    from bench.analytics import run as run_analytics
    from bench.checkout_setup import BenchError
    from bench.environment import header
    from bench.scratch import ScratchNameInvalid

    sizes = _sizes(events)
    settings = settings_for(data_dir)
    lines = header(
        settings,
        events=" then ".join(f"{s:,}" for s in sizes),
        people=people,
        products=products,
        seed=seed,
        requests=requests,
        concurrency=concurrency,
        keep_database=keep_database or "no",
        defer_indexes=defer_indexes,
        load_workers=load_workers,
        api_workers=api_workers or settings.shop_api_workers,
        timeout=f"{timeout:g} s",
    )
    for line in lines:
        console.print(line)
    try:
        results = asyncio.run(
            run_analytics(
                settings,
                sizes=sizes,
                people=people,
                products=products,
                seed=seed,
                requests=requests,
                concurrency=concurrency,
                console=err_console,
                say=console.print,
                keep_database=keep_database,
                defer_indexes=defer_indexes,
                load_workers=load_workers,
                api_workers=api_workers,
                request_timeout=timeout,
            )
        )
    except (DependencyUnavailable, OSError) as exc:
        raise fail(f"the stack did not answer: {exc}") from None
    except (BenchError, ScratchNameInvalid) as exc:
        raise fail(str(exc)) from None
    unanswered = sum(result.unanswered for result in results)
    if unanswered and fail_on_unanswered:
        raise fail(f"{unanswered} request(s) went without an answer (the lines marked !)")
