"""``shop bench``: benchmarks that print figures (the measuring itself is ``bench/``).

The commands by what they time: the serving stack (``serving``: start-up, one endpoint,
the catalogue), orders through it (``orders``: checkout, fulfilment), and the data it
moves (``data``: the event relay, analytics).
"""

from __future__ import annotations

import typer

from cli.benchmarks.data import bench_analytics, bench_events
from cli.benchmarks.orders import bench_checkout, bench_fulfilment
from cli.benchmarks.serving import bench_catalog, bench_http, bench_startup

bench_app = typer.Typer(help="Benchmarks that print figures (see bench/).", no_args_is_help=True)
bench_app.command("startup")(bench_startup)
bench_app.command("http")(bench_http)
bench_app.command("catalog")(bench_catalog)
bench_app.command("checkout")(bench_checkout)
bench_app.command("fulfilment")(bench_fulfilment)
bench_app.command("events")(bench_events)
bench_app.command("analytics")(bench_analytics)
