"""Liveness, readiness and metrics: outside /api, for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from http import HTTPStatus
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# Declares the event counters, so that /metrics shows them (at 0) before the first count.
import services.events.metrics  # noqa: F401
from api.deps import State
from api.middleware import current_request_id
from api.problems import (
    REDIS_UNAVAILABLE,
    no_database_outage,
    problem_response,
    problem_responses,
)
from api.relay_metrics import relay_exposition
from core.db import ping
from core.errors import DependencyUnavailable
from core.shared_metrics import SharedCounters
from models.base import CamelModel

# Shared counters are reported only once declared in this process: import the modules
# that declare them (their increments happen in workers).
from services.events.handlers import payments as _payment_counters  # noqa: F401

router = APIRouter(tags=["system"])
log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 3.0


class Health(CamelModel):
    status: Literal["ok"] = "ok"


class Readiness(CamelModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, str]


@router.get("/health", summary="Liveness: the process answers", response_model=Health)
@no_database_outage  # reads nothing
async def health() -> Health:
    """Answers 200 while the API process runs. It checks nothing else, so a load balancer
    does not restart healthy API replicas when a dependency has a bad minute."""
    return Health()


async def _check(name: str, probe: Awaitable[object]) -> str:
    """ "ok" or a short, public reason; the full error goes to the log only (it may name
    hosts, users or ports)."""
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness: %s did not answer in time", name)
        return "error: no answer in time"
    except Exception as exc:
        log.warning("readiness: %s failed: %s", name, exc)
        return "error: unavailable"
    return "ok"


async def _temporal_ok(state: State) -> None:
    client = await state.temporal.get()
    await client.service_client.check_health(timeout=timedelta(seconds=2))


@router.get(
    "/ready",
    summary="Readiness: database, Redis and Temporal all answer",
    response_model=Readiness,
    responses=problem_responses((DependencyUnavailable, "not_ready")),
)
@no_database_outage  # an outage of any of the three answers `not_ready`
async def ready(request: Request, state: State) -> Response:
    """200 when PostgreSQL, Redis and Temporal all answer within 3 s. Otherwise 503
    problem+json with code `not_ready`, naming each dependency that failed in `detail`
    and giving every check's result in `checks`."""
    db, redis, temporal = await asyncio.gather(
        _check("database", ping(state.engine)),
        _check("redis", state.redis.ping()),
        _check("temporal", _temporal_ok(state)),
    )
    checks = {"database": db, "redis": redis, "temporal": temporal}
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return problem_response(
            status=HTTPStatus.SERVICE_UNAVAILABLE,
            code="not_ready",
            title="Not ready",
            detail="not ready: " + ", ".join(failed),
            instance=request.url.path,
            request_id=current_request_id(request),
            extra={"checks": checks, "failed": failed},
        )
    return JSONResponse(Readiness(checks=checks).model_dump(by_alias=True))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problem_responses(REDIS_UNAVAILABLE)},
)
# The relay's gauges leave out what the database does not answer; the shared counters
# are read from Redis.
@no_database_outage
async def metrics(request: Request, state: State) -> Response:
    """Request counts and latencies of every API process behind this port (`shop api
    --workers N` sums them; one process adds its CPU, memory and GC figures), the
    system-wide counters every process adds to (``core/shared_metrics.py``) and the event
    relay's gauges (read from the database now), in the Prometheus text format."""
    own = generate_latest(request.app.state.registry)
    shared = await SharedCounters(state.redis).exposition()
    relay = await relay_exposition(
        state.sessions,
        live_within=timedelta(seconds=3 * state.settings.event_relay_poll_seconds),
    )
    return Response(own + shared + relay, media_type=CONTENT_TYPE_LATEST)
