"""``shop bench checkout`` and ``fulfilment``: orders placed and shipped through the
running stack."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.options import DataDir, console, err_console, fail, settings_for
from core.errors import DependencyUnavailable


def bench_checkout(
    data_dir: DataDir = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL (default: the stack's).")
    ] = None,
    orders: Annotated[int, typer.Option(min=1, max=100_000, help="Orders to place.")] = 200,
    concurrency: Annotated[int, typer.Option(min=1, max=500, help="Orders in flight.")] = 20,
    poll: Annotated[
        float, typer.Option(min=0.01, max=5, help="Seconds between polls of each order.")
    ] = 0.5,
    poll_max: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=30,
            help="The poll interval doubles up to this while an order is not settled "
            "(--poll-max equal to --poll: a fixed interval).",
        ),
    ] = 2.0,
    status: Annotated[
        str,
        typer.Option(
            "--status",
            help="How each client learns that its order changed: `long-poll` "
            "(If-None-Match + Prefer: wait=30 + ?until=, answered once the order is "
            "confirmed, then once it settles) or `poll` (every "
            "--poll seconds, doubling up to --poll-max), kept for comparison.",
        ),
    ] = "long-poll",
    pause: Annotated[
        float,
        typer.Option(
            min=0,
            max=60,
            help="Seconds a client waits after its order settled before placing the next "
            "(0: at once). With --concurrency 1, a pause lets the work an order sets off "
            "after it settles (fulfilment, event deliveries) finish before the next order, "
            "so the latencies are those of one order alone; throughput then counts the "
            "pauses.",
        ),
    ] = 0.0,
    compare_bare: Annotated[
        bool,
        typer.Option(
            "--compare-bare",
            help="Then run as many bare workflows of the same shape (the activities of an "
            "order's history, doing nothing) at the same concurrency on the same Temporal "
            "server, and print both figures and their ratio.",
        ),
    ] = False,
) -> None:
    """Orders per second and POST-to-confirmed latency of the whole checkout against the
    running stack (`shop dev`): shoppers and stock are set up first, untimed."""
    import httpx

    from bench.checkout import FOLLOW_MODES
    from bench.checkout import run as run_checkout
    from bench.checkout_setup import BenchError

    if status not in FOLLOW_MODES:
        raise fail(f"--status is one of {', '.join(FOLLOW_MODES)}, not {status!r}")
    settings = settings_for(data_dir)
    base = (base_url or settings.api_base_url).rstrip("/")
    try:
        result = asyncio.run(
            run_checkout(
                base,
                settings,
                orders=orders,
                concurrency=concurrency,
                poll=poll,
                poll_max=poll_max,
                follow=status,
                pause=pause,
                progress=lambda message: err_console.print(message),
            )
        )
    except (httpx.HTTPError, DependencyUnavailable) as exc:
        raise fail(f"the API at {base} did not answer: {exc}") from None
    except BenchError as exc:
        raise fail(str(exc)) from None
    from bench.environment import header, sandboxes
    from bench.stack_cost import census_since

    try:
        result.census = asyncio.run(census_since(settings, result.started_at))
    except DependencyUnavailable as exc:
        err_console.print(f"workflows per order not counted: {exc}")

    lines = [
        *header(
            settings,
            orders=orders,
            concurrency=concurrency,
            status=status,
            **({"poll": poll, "poll_max": poll_max} if status == "poll" else {}),
            **({"pause": pause} if pause else {}),
        ),
        sandboxes(settings),
        *result.lines(),
    ]
    if compare_bare:
        from bench.bare import compare, comparison, cpu_comparison

        done = result.completed
        if not done:
            raise fail("no order was confirmed: there is no shape to compare with")
        err_console.print(f"running {orders} bare workflows of the same shape…")
        try:
            bare = asyncio.run(
                compare(
                    settings,
                    done[0].order_id,
                    workflows=orders,
                    concurrency=concurrency,
                    base_url=base,
                )
            )
        except DependencyUnavailable as exc:
            raise fail(f"Temporal did not answer: {exc}") from None
        lines += [
            *bare.lines(),
            comparison(result.orders_per_second, bare),
            *cpu_comparison(result.cpu_per_order_ms(), bare),
        ]
    for line in lines:
        console.print(line)


def bench_fulfilment(
    data_dir: DataDir = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="API base URL (default: the stack's).")
    ] = None,
    parcels: Annotated[int, typer.Option(min=1, max=20_000, help="Parcels to ship.")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, max=200, help="Parcels in flight.")] = 10,
    poll: Annotated[
        float, typer.Option(min=0.01, max=5, help="Seconds between polls of each parcel.")
    ] = 0.2,
    ceiling: Annotated[
        bool, typer.Option(help="Also time the sandbox carrier alone, for comparison.")
    ] = True,
) -> None:
    """Shipments per second the running stack (`shop dev`) books (label through the
    sandbox carrier) and tracks to delivery (advance switch, signed webhooks,
    `ShipmentWorkflow`, order delivered), with create-to-label and create-to-delivered
    latencies; orders to ship are placed first, untimed."""
    import httpx

    from bench.checkout_setup import BenchError
    from bench.fulfilment import run as run_fulfilment

    settings = settings_for(data_dir)
    base = (base_url or settings.api_base_url).rstrip("/")
    try:
        result = asyncio.run(
            run_fulfilment(
                base,
                settings,
                parcels=parcels,
                concurrency=concurrency,
                poll=poll,
                ceiling=ceiling,
                progress=lambda message: err_console.print(message),
            )
        )
    except (httpx.HTTPError, DependencyUnavailable) as exc:
        raise fail(f"the API at {base} did not answer: {exc}") from None
    except BenchError as exc:
        raise fail(str(exc)) from None
    from bench.environment import header

    for line in [
        *header(settings, parcels=parcels, concurrency=concurrency, poll=poll),
        *result.lines(),
    ]:
        console.print(line)
