"""Mapping our typed errors to Temporal failures, once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from core.errors import ShopError


def to_application_error(error: ShopError) -> ApplicationError:
    """A business error becomes an ``ApplicationError`` whose ``type`` is our stable code.

    It is non-retryable unless the error class says retrying can help, and it carries the
    problem's extra members (e.g. ``unavailableItems``) as details for the workflow.
    """
    return ApplicationError(
        error.detail,
        error.extra,
        type=error.code,
        non_retryable=not error.retryable,
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
