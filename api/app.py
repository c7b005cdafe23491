"""The app factory. ``create_app(settings)`` is what uvicorn, tests and benchmarks run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from api import system
from api.cors import CorsMiddleware, CorsPolicy
from api.easypost_auto_advance import stop_auto_advance
from api.errors import install_error_handlers
from api.guards import InputGuardMiddleware
from api.head_requests import HeadAsGetMiddleware
from api.idempotency import IdempotencyMiddleware
from api.middleware import (
    Metrics,
    RequestContextMiddleware,
    fastapi_telemetry,
    metrics_exposition,
)
from api.openapi import install_openapi
from api.query_parameters import refuse_unexpected_query
from api.routes import (
    addresses,
    admin_events,
    admin_returns,
    analytics_dashboard,
    analytics_funnel,
    analytics_track,
    auth,
    carts,
    catalog,
    dashboard_page,
    easypost_sandbox,
    easypost_sandbox_pages,
    fulfillments,
    hubspot_sandbox,
    inventory,
    notifications,
    order_events,
    orders,
    payments,
    pricing,
    returns,
    reviews,
    sandbox,
    sandbox_marketing,
    shipping_webhooks,
    stream_tickets,
    stripe_sandbox,
    users,
    webhooks,
)
from api.state import AppState
from core.db import create_engine, create_session_factory
from core.production import check_production
from core.redis import create_redis
from core.settings import Settings, load_settings
from core.telemetry import ProcessRole, tracing_for
from services.passwords import configure_hashing

API_PREFIX = "/api"

DESCRIPTION = """
Shopweave is an e-commerce backend whose order processing runs as durable Temporal
workflows. JSON is camelCase; money is integer minor units plus an ISO 4217 `currency`;
ids are prefixed strings (`prod_…`, `ord_…`). Every error is RFC 9457 problem+json with
a stable `code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_hashing(settings)
    tracing = tracing_for(settings, ProcessRole.API)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # First: every setting production lacks, named at once (`shop api` asks it before
        # uvicorn; a process of `--workers N` or a test's app asks it here).
        check_production(settings, ProcessRole.API)
        engine = create_engine(settings, tracing=tracing)
        redis = create_redis(settings, tracing=tracing)
        app.state.shop = AppState(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            redis=redis,
        )
        app.state.shop.start()
        try:
            yield
        finally:
            await stop_auto_advance(app.state.shop)  # the EasyPost sandbox's, if running
            await app.state.shop.aclose()
            await redis.aclose()
            await engine.dispose()
            if tracing is not None:
                tracing.flush()  # the last requests' spans, before the process goes

    app = FastAPI(
        title="Shopweave API",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
        telemetry=fastapi_telemetry(tracing),
    )
    registry = CollectorRegistry()
    app.state.registry = metrics_exposition(registry, settings.prometheus_multiproc_dir)
    # Innermost: HEAD runs as GET through the routes, and is HEAD to everything outside.
    app.add_middleware(HeadAsGetMiddleware)
    # Added first, so it runs inside the request-id middleware (and sees the id).
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(InputGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outside the guard and idempotency, so their answers carry the CORS headers too; inside
    # the request id, so a preflight has one.
    cors = CorsPolicy(
        settings.cors_origins,
        credentials=settings.cors_allow_credentials,
        max_age=settings.cors_max_age_seconds,
    )
    app.add_middleware(CorsMiddleware, policy=cors)
    app.add_middleware(RequestContextMiddleware, metrics=Metrics(registry), tracing=tracing)
    install_error_handlers(app)

    # Routes are matched in order, each included router one level of matching (FastAPI
    # walks every candidate's routes, and does it twice for the one it picks): the
    # catalogue, the busiest by far, comes first, and the API's routers are included
    # directly under their prefix, not through one more router. No other path overlaps
    # the catalogue's (`/api/products`, `/api/products/{key}`, `/api/categories`).
    # Every /api route refuses a query parameter it does not declare (api/query_parameters.py).
    strict_query = [Depends(refuse_unexpected_query)]
    app.include_router(catalog.router, prefix=API_PREFIX, dependencies=strict_query)
    app.include_router(system.router)
    app.include_router(dashboard_page.router)
    for routes in (
        auth.router,
        auth.admin,
        users.router,
        addresses.router,
        reviews.router,
        pricing.router,
        inventory.router,
        carts.router,
        carts.shared,
        orders.router,
        order_events.router,
        notifications.router,
        stream_tickets.router,
        fulfillments.router,
        returns.router,
        admin_returns.router,
        payments.router,
        shipping_webhooks.router,
        admin_events.router,
        webhooks.router,
        analytics_track.router,
        analytics_dashboard.router,
        analytics_funnel.router,
    ):
        app.include_router(routes, prefix=API_PREFIX, dependencies=strict_query)
    if settings.sandboxes_enabled:
        # A sandbox stands in for its provider only while the real key is unset: mounted
        # beside the real service it would still sign webhooks, with the real webhook
        # secret, and post them to our own endpoints (a forged payment or delivery).
        for uses_sandbox, sandbox_routes in (
            (settings.email_uses_sandbox, (sandbox.router, sandbox_marketing.router)),
            (settings.payments_use_sandbox, (stripe_sandbox.router,)),
            (settings.crm_uses_sandbox, (hubspot_sandbox.router,)),
            (
                settings.shipping_uses_sandbox,
                (easypost_sandbox.router, easypost_sandbox_pages.router),
            ),
        ):
            if uses_sandbox:
                for sandbox_router in sandbox_routes:
                    app.include_router(sandbox_router)

    install_openapi(app)
    return app
