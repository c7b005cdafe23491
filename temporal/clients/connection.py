"""The connection every workflow client shares, and what its failures mean to callers.

Callers (the API, the CLI, activities) wait a bounded time for Temporal and never see
its exceptions: an unknown or finished workflow is ``WorkflowNotFound``; anything that
means Temporal cannot be reached or did not answer is ``TemporalUnavailable`` (503
``dependency_unavailable`` with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.errors import Conflict, DependencyUnavailable, NotFound, TemporalUnavailable
from core.settings import Settings
from core.telemetry import ProcessRole
from temporal.client import connect, not_reachable

T = TypeVar("T")

# How long a caller waits for a connection, and then for one call (a start, a signal,
# an update being accepted). Temporal answers in milliseconds when it is up.
CONNECT_SECONDS = 3.0
CALL_SECONDS = 5.0


class WorkflowNotFound(NotFound):
    code = "workflow_not_found"
    title = "No such workflow is running"


class WorkflowRefused(Conflict):
    """The workflow rejected an update (its validator said no); ``code`` is its reason."""

    code = "workflow_refused"
    title = "The workflow refused the request"


class TemporalConnection:
    """Connects on first use and again after a failure, so the API starts (and reports
    itself not ready) while Temporal is still down, instead of refusing to start."""

    def __init__(
        self, connect: Callable[[], Awaitable[Client]], *, address: str | None = None
    ) -> None:
        self._connect = connect
        self._address = address  # what ``connect`` reaches, for the error
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, role: ProcessRole = ProcessRole.API
    ) -> TemporalConnection:
        return cls(
            lambda: connect(settings, timeout=CONNECT_SECONDS, role=role),
            address=settings.temporal_address,
        )

    @classmethod
    def of(cls, client: Client) -> TemporalConnection:
        """An already connected client (a worker's, the CLI's)."""
        connection = cls(lambda: asyncio.sleep(0, client))
        connection._client = client
        return connection

    async def get(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    async def client(self) -> Client:
        """The client within ``CONNECT_SECONDS``, or ``DependencyUnavailable``: no
        connection opened is ``temporal_unavailable``, whether the connect failed or
        did not finish in time (Temporal took the connection and never answered), for
        the caller that connected and those that waited for it alike."""
        try:
            return await asyncio.wait_for(self.get(), CONNECT_SECONDS)
        except DependencyUnavailable:
            raise
        except Exception as exc:
            raise not_reachable(self._address, exc, CONNECT_SECONDS) from exc


async def call(request: Awaitable[T], *, what: str, seconds: float = CALL_SECONDS) -> T:
    """One request to Temporal about a workflow (``what`` names it for the error)."""
    try:
        return await asyncio.wait_for(request, seconds)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise WorkflowNotFound(f"{what} is not running") from exc
        raise TemporalUnavailable(f"{what} cannot be reached; try again") from exc
    except (TimeoutError, OSError, RuntimeError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise TemporalUnavailable(f"{what} did not answer; try again") from exc


def refusal(exc: WorkflowUpdateFailedError, what: str) -> Exception:
    """An Update's failure as ours: the workflow's refusal (its validator's or its
    handler's ``ApplicationError``) with its code; anything else means try again. A
    validator's refusal comes back from the Update's result, not from its start, when
    the start waits only for the Update to be accepted."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return WorkflowRefused(cause.message, code=cause.type)
    return TemporalUnavailable(f"{what}; try again")
