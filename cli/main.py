"""The ``shop`` command."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.unreachable import unreachable
from core.errors import DependencyUnavailable
from core.logging import configure_logging
from core.settings import Settings, load_settings

app = typer.Typer(
    name="shop",
    help="Shopweave: the dev stack, the API, workers, migrations and admin tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
migrate_app = typer.Typer(help="Apply or create database migrations.", invoke_without_command=True)
admin_app = typer.Typer(help="Operator tasks.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures (see bench/).", no_args_is_help=True)
search_app = typer.Typer(help="The catalogue's search index.", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
app.add_typer(admin_app, name="admin")
app.add_typer(bench_app, name="bench")
app.add_typer(search_app, name="search")

console = Console(soft_wrap=True)
SEED_PASSWORD_HINT = "seeded customer password 2026"
err_console = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data dir of the `shop dev` stack to use (default: SHOP_DATA_DIR or ./.shop).",
        show_default=False,
    ),
]


def _settings(data_dir: Path | None) -> Settings:
    from services.passwords import configure_hashing

    settings = load_settings(data_dir)
    configure_logging(settings.log_level, settings.log_format)
    configure_hashing(settings)
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


@app.command()
def dev(
    data_dir: DataDir = None,
    api_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port of the API (default: SHOP_API_PORT, 3001)."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes to start.")] = 1,
    api_workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API processes (default: SHOP_API_WORKERS, else 2 on 2+ cores, else 1).",
        ),
    ] = None,
    temporal_port: Annotated[int, typer.Option(help="gRPC port of Temporal.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Port of the Temporal web UI (0: none).")] = 8233,
    postgres_port: Annotated[int, typer.Option(help="Port of embedded PostgreSQL.")] = 54329,
    redis_port: Annotated[int, typer.Option(help="Port of embedded Redis.")] = 63799,
) -> None:
    """Run the whole system: PostgreSQL, Redis, Temporal, worker(s) and the API."""
    from cli.stack.dev import DevOptions, DevStack
    from cli.stack.process import StackError

    # Not load_settings: a stack.env left by a killed `shop dev` must not steer this one.
    settings = Settings() if data_dir is None else Settings(shop_data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_format)
    if api_workers is None and "shop_api_workers" in settings.model_fields_set:
        api_workers = settings.shop_api_workers
    options = DevOptions(
        data_dir=settings.shop_data_dir,
        api_port=api_port or settings.shop_api_port,
        workers=workers,
        api_workers=api_workers or min(2, os.cpu_count() or 1),
        temporal_port=temporal_port,
        ui_port=ui_port,
        postgres_port=postgres_port,
        redis_port=redis_port,
    )
    try:
        code = DevStack(options, settings, console).run()
    except StackError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@app.command()
def api(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SHOP_API_PORT, 3001).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Processes (default SHOP_API_WORKERS, 1)."),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn (several processes with --workers)."""
    import uvicorn

    from api.app import create_app
    from cli.serve import api_server_options, serve_processes, settle_heap

    settings = _settings(data_dir)
    try:
        application = create_app(settings)
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None
    processes = workers or settings.shop_api_workers
    common = {
        "host": host or settings.shop_api_host,
        "port": port or settings.shop_api_port,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 5,
        **api_server_options(settings),
    }
    if processes == 1:
        settle_heap()
        uvicorn.run(application, **common)
        return
    # Each process builds its own app from the same settings (the data dir by env).
    if data_dir is not None:
        os.environ["SHOP_DATA_DIR"] = str(data_dir)
    os.environ["SHOP_API_PORT"] = str(common["port"])
    serve_processes("cli.serve:api_worker_app", processes, **common)


@app.command()
def worker(
    data_dir: DataDir = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Task queue to serve (repeatable; default: all)."),
    ] = None,
) -> None:
    """Run a worker process on the given task queues (all of them by default)."""
    from temporal.queues import ALL_QUEUES, TaskQueue
    from workers.main import run_worker

    settings = _settings(data_dir)
    try:
        queues = [TaskQueue(q) for q in queue] if queue else list(ALL_QUEUES)
    except ValueError:
        names = ", ".join(ALL_QUEUES)
        raise _fail(f"unknown queue in {queue}; the queues are {names}") from None
    try:
        asyncio.run(run_worker(settings, queues))
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None


def _database_url(data_dir: Path | None) -> str:
    from core.db import require_database_url

    try:
        return require_database_url(_settings(data_dir))
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    data_dir: DataDir = None,
    revision: Annotated[str, typer.Option(help="Revision to upgrade to.")] = "head",
) -> None:
    """Apply migrations up to REVISION (head by default)."""
    if ctx.invoked_subcommand is not None:
        return
    from migrations.runner import upgrade

    upgrade(_database_url(data_dir), revision)
    console.print(f"database migrated to {revision}")


@migrate_app.command("new")
def migrate_new(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    data_dir: DataDir = None,
) -> None:
    """Autogenerate a migration from the models (against an up-to-date database)."""
    from migrations.runner import new_revision

    new_revision(_database_url(data_dir), message)


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Argument(help="Email address of the staff account.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name.")] = "Staff",
    role: Annotated[str, typer.Option(help="staff or admin.")] = "staff",
    data_dir: DataDir = None,
) -> None:
    """Create a staff (or admin) account. The password policy applies as for customers."""
    from pydantic import ValidationError

    from core.db import create_engine, create_session_factory, transaction
    from core.errors import ShopError
    from models.users import Role, UserCreate
    from services.analytics import AnalyticsRecorder
    from services.users import RegistrationContext, UserService

    settings = _settings(data_dir)
    if role not in ("staff", "admin"):
        raise _fail("--role is staff or admin")
    try:
        data = UserCreate(email=email, password=password, name=name)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    async def create() -> str:
        engine = create_engine(settings)
        try:
            async with transaction(create_session_factory(engine)) as session:
                service = UserService(
                    session,
                    analytics=AnalyticsRecorder(settings.analytics_enabled),
                    password_min_length=settings.password_min_length,
                )
                context = RegistrationContext(user_agent="shop admin create", method="admin")
                user = await service.register(data, context, role=Role(role))
                return user.id
        finally:
            await engine.dispose()

    try:
        user_id = asyncio.run(create())
    except (ShopError, DependencyUnavailable) as exc:
        raise _fail(exc.detail) from None
    console.print(f"created {role} account {user_id} for {data.email}")


@admin_app.command("unlock")
def admin_unlock(
    email: Annotated[
        str | None, typer.Argument(help="Email whose sign-in lock-out to lift.")
    ] = None,
    ip: Annotated[str | None, typer.Option(help="Client address to lift as well.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Lift a sign-in lock-out now (after too many failed sign-ins), for an email and/or
    an address. The staff endpoint POST /api/admin/sign-in-locks/unlock does the same."""
    from core.redis import create_redis
    from services.throttle import LoginThrottle

    if not email and not ip:
        raise _fail("give an EMAIL, --ip, or both")
    settings = _settings(data_dir)

    async def unlock() -> bool:
        redis = create_redis(settings)
        try:
            return await LoginThrottle.from_settings(redis, settings).unlock(email=email, ip=ip)
        finally:
            await redis.aclose()

    try:
        unlocked = asyncio.run(unlock())
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None
    who = " and ".join(x for x in (email, ip) if x)
    console.print(f"unlocked {who}" if unlocked else f"{who} was not locked")


@admin_app.command("setup-temporal")
def admin_setup_temporal(data_dir: DataDir = None) -> None:
    """Register our search attributes (CustomerId, OrderStatus, OrderTotal) and schedules.

    Idempotent; run once per namespace on a self-hosted cluster. On Temporal Cloud create
    them in the Cloud console instead.
    """
    from temporal.client import connect
    from temporal.schedules import ensure_schedules
    from temporal.search_attributes import ensure_search_attributes

    settings = _settings(data_dir)

    async def setup() -> tuple[list[str], list[str]]:
        client = await connect(settings)
        added = await ensure_search_attributes(client, settings.temporal_namespace)
        return added, await ensure_schedules(client)

    try:
        added, schedules = asyncio.run(setup())
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None
    namespace = settings.temporal_namespace
    if added:
        console.print(f"registered on {namespace}: {', '.join(added)}")
    else:
        console.print(f"search attributes already present on {namespace}")
    if schedules:
        console.print(f"created schedules: {', '.join(schedules)}")


@admin_app.command("probe")
def admin_probe(
    data_dir: DataDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds a queue may go unserved.")] = 10,
) -> None:
    """Check that every task queue is served by a worker that reaches the database and Redis."""
    from cli.stack.dev import probe_workers
    from cli.stack.process import StackError

    settings = _settings(data_dir)
    try:
        report = asyncio.run(probe_workers(settings, timeout))
    except (StackError, DependencyUnavailable) as exc:
        raise _fail(str(exc)) from None
    for line in report:
        console.print(line)


@app.command()
def seed(
    data_dir: DataDir = None,
    products: Annotated[int, typer.Option(min=0, max=1_000_000)] = 1000,
    users: Annotated[int, typer.Option(min=0, max=100_000)] = 100,
    reviews: Annotated[
        int | None, typer.Option(min=0, help="Default: half the products, at most 5000.")
    ] = None,
    seed_value: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 42,
    orders: Annotated[
        int,
        typer.Option(
            min=0,
            max=100_000,
            help="Orders of the seeded customers, placed through the real checkout and "
            "workflow, then spread over the last 90 days with their analytics, then "
            "shipped, delivered and some returned by the real workflows. Needs the "
            "running stack (`shop dev`).",
        ),
    ] = 0,
) -> None:
    """Fill the database with a realistic, deterministic catalogue, users and reviews,
    and optionally orders (with their funnel analytics) in the past. The numbers are
    targets: each part adds only what the seed's own records lack, so a re-run adds
    nothing and leaves everything else alone."""
    from cli.seed import seed as run_seed

    settings = _settings(data_dir)
    try:
        report = asyncio.run(
            run_seed(
                settings,
                products=products,
                users=users,
                reviews=reviews,
                seed=seed_value,
                console=console,
                orders=orders,
            )
        )
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None
    console.print(
        f"categories {report.categories}, products added {report.products_added}, "
        f"users added {report.users_added} (password: {SEED_PASSWORD_HINT}), "
        f"reviews added {report.reviews_added}"
    )
    if report.orders.added:
        placed = report.orders
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(placed.by_status.items()))
        failures = ", ".join(f"{n} {c}" for c, n in sorted(placed.failures.items()))
        console.print(
            f"orders added {placed.added} ({statuses}{'; ' + failures if failures else ''}), "
            "spread over the last 90 days"
        )
    after = report.after_sale
    if after.parcels or after.returns:
        fates = ", ".join(f"{n} {f}" for f, n in sorted(after.by_fate.items()))
        console.print(
            f"after the sale, as planned ({fates}; a parcel whose carrier steps fall after "
            f"now is still on its way): parcels added {after.parcels}, "
            f"returns added {after.returns}"
        )
    console.print(staff_account_line(report.staff_email, report.staff_password))


def staff_account_line(email: str, password: str | None) -> str:
    """The seed's last line: the staff login it made, or, on a re-run (the password is
    not kept), how to get in anyway."""
    if password:
        return f"staff account: {email} / {password}"
    return (
        f"staff account {email} already existed (its password was printed by the seed "
        "that made it; `shop admin create EMAIL --password PW` makes another)"
    )


@search_app.command("reindex")
def search_reindex(data_dir: DataDir = None) -> None:
    """Rebuild the search index from PostgreSQL (SEARCH_INDEX_DIR, default
    DATA_DIR/search-index). Searches keep answering meanwhile; changes committed during
    the rebuild reach the index through their product.changed events."""
    from core.db import create_engine, create_session_factory
    from services.catalog.indexing import SearchIndexing

    settings = _settings(data_dir)
    indexing = SearchIndexing.from_settings(settings)
    if indexing is None:
        raise _fail("the search index is switched off (SEARCH_INDEX=false)")

    async def rebuild() -> int:
        engine = create_engine(settings)
        try:
            return await indexing.rebuild(create_session_factory(engine))
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(rebuild())
    except DependencyUnavailable as exc:
        raise _fail(exc.detail) from None
    console.print(f"search index rebuilt: {count} products at {settings.search_index_path}")


@bench_app.command("startup")
def bench_startup(
    runs: Annotated[int, typer.Option(min=1, max=10, help="Warm restarts to time.")] = 3,
) -> None:
    """Time `shop dev` from launch to ready (cold and warm) and to stop; weigh its processes."""
    from bench.environment import header
    from bench.startup import run

    for line in [*header(None, runs=runs), *run(runs)]:
        console.print(line)


@bench_app.command("http")
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

    settings = _settings(data_dir)
    url = f"http://127.0.0.1:{settings.shop_api_port}{path}"
    for line in [
        *header(settings, requests=requests, concurrency=concurrency, seconds=seconds),
        *run(url, requests, concurrency, settings.shop_api_workers, seconds),
    ]:
        console.print(line)


@bench_app.command("catalog")
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

    settings = _settings(data_dir)
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
        raise _fail(f"the API at {base} did not answer: {exc}") from None
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
        points = asyncio.run(
            search_scaling(settings, wanted, min(duration, 10), concurrency, generators)
        )
        for point in points:
            r = point.result
            console.print(
                f"  {point.products:>9,} products: {r.rps:7.0f} req/s   "
                f"p50 {r.percentile(50) * 1000:6.1f} ms   p95 {r.percentile(95) * 1000:6.1f} ms"
                f"   p99 {r.percentile(99) * 1000:6.1f} ms   {dict(sorted(r.statuses.items()))}"
            )
            if r.server_cpu and r.requests:
                console.print(
                    "  " + per_request_line("  CPU ms per search", r.server_cpu, r.requests)
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


@bench_app.command("checkout")
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

    from bench.checkout import FOLLOW_MODES, BenchError
    from bench.checkout import run as run_checkout

    if status not in FOLLOW_MODES:
        raise _fail(f"--status is one of {', '.join(FOLLOW_MODES)}, not {status!r}")
    settings = _settings(data_dir)
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
        raise _fail(f"the API at {base} did not answer: {exc}") from None
    except BenchError as exc:
        raise _fail(str(exc)) from None
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
            raise _fail("no order was confirmed: there is no shape to compare with")
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
            raise _fail(f"Temporal did not answer: {exc}") from None
        lines += [
            *bare.lines(),
            comparison(result.orders_per_second, bare),
            *cpu_comparison(result.cpu_per_order_ms(), bare),
        ]
    for line in lines:
        console.print(line)


@bench_app.command("fulfilment")
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

    from bench.checkout import BenchError
    from bench.fulfilment import run as run_fulfilment

    settings = _settings(data_dir)
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
        raise _fail(f"the API at {base} did not answer: {exc}") from None
    except BenchError as exc:
        raise _fail(str(exc)) from None
    from bench.environment import header

    for line in [
        *header(settings, parcels=parcels, concurrency=concurrency, poll=poll),
        *result.lines(),
    ]:
        console.print(line)


@bench_app.command("events")
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

    settings = _settings(data_dir)
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
        raise _fail(f"the stack did not answer: {exc}") from None
    except BenchError as exc:
        raise _fail(str(exc)) from None
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
        raise _fail(f"--events takes comma-separated counts, not {value!r}") from None
    if not sizes or sizes[0] < 1:
        raise _fail("--events takes counts of at least 1, e.g. 1000000,10000000")
    return sizes


@bench_app.command("analytics")
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
    from bench.checkout import BenchError
    from bench.environment import header
    from bench.scratch import ScratchNameInvalid

    sizes = _sizes(events)
    settings = _settings(data_dir)
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
        raise _fail(f"the stack did not answer: {exc}") from None
    except (BenchError, ScratchNameInvalid) as exc:
        raise _fail(str(exc)) from None
    unanswered = sum(result.unanswered for result in results)
    if unanswered and fail_on_unanswered:
        raise _fail(f"{unanswered} request(s) went without an answer (the lines marked !)")


def main() -> None:
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        line = unreachable(exc)
        if line is None:
            raise
        err_console.print(f"[red]error:[/] {escape(line)}")
        code = 1
    # The Temporal SDK's Rust threads can abort CPython's finalisation ("PyGILState_Release:
    # thread state must be current", temporalio/sdk-python#300), turning a clean exit into
    # SIGABRT. Everything is closed by now, so skip finalisation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
