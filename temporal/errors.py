"""Mapping our typed errors to Temporal failures, once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from core.errors import ShopError


def to_application_error(error: ShopError) -> ApplicationError:
    """A business error becomes an ``ApplicationError`` whose ``type`` is our stable code.

    It is non-retryable unless the error class says retrying can help, and it carries the
    problem's extra members (e.g. ``unavailableItems``) as details for the workflow. A
    retryable one that knows when to try again (``retry_after``, seconds) asks Temporal
    to retry the activity then rather than after its policy's next backoff.
    """
    retry_after = error.extra.get("retry_after") if error.retryable else None
    return ApplicationError(
        error.detail,
        error.extra,
        type=error.code,
        non_retryable=not error.retryable,
        next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
        # An expected business outcome (out_of_stock, payment_declined) is logged at
        # DEBUG by the worker, not as an alarming traceback.
        category=ApplicationErrorCategory.UNSPECIFIED
        if error.retryable
        else ApplicationErrorCategory.BENIGN,
    )


@contextmanager
def application_errors() -> Iterator[None]:
    """In an activity: our typed errors leave as ``ApplicationError``s (see above)."""
    try:
        yield
    except ShopError as exc:
        raise to_application_error(exc) from exc
