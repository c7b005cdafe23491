"""``shop admin``: operator tasks (staff accounts, sign-in lock-outs, Temporal set-up,
the workers' probe)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable

admin_app = typer.Typer(help="Operator tasks.", no_args_is_help=True)


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

    settings = settings_for(data_dir)
    if role not in ("staff", "admin"):
        raise fail("--role is staff or admin")
    try:
        data = UserCreate(email=email, password=password, name=name)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

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
        raise fail(exc.detail) from None
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
        raise fail("give an EMAIL, --ip, or both")
    settings = settings_for(data_dir)

    async def unlock() -> bool:
        redis = create_redis(settings)
        try:
            return await LoginThrottle.from_settings(redis, settings).unlock(email=email, ip=ip)
        finally:
            await redis.aclose()

    try:
        unlocked = asyncio.run(unlock())
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
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

    settings = settings_for(data_dir)

    async def setup() -> tuple[list[str], list[str]]:
        client = await connect(settings)
        added = await ensure_search_attributes(client, settings.temporal_namespace)
        return added, await ensure_schedules(client)

    try:
        added, schedules = asyncio.run(setup())
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
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
    from cli.stack.probes import probe_workers
    from cli.stack.process import StackError

    settings = settings_for(data_dir)
    try:
        report = asyncio.run(probe_workers(settings, timeout))
    except (StackError, DependencyUnavailable) as exc:
        raise fail(str(exc)) from None
    for line in report:
        console.print(line)
