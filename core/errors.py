"""The one typed error family (STYLE rule 4).

Every error a client can cause is a ``ShopError`` subclass carrying its HTTP status and
a stable machine-readable ``code``. ``api/errors.py`` renders them as RFC 9457
problem+json; ``temporal/errors.py`` turns them into non-retryable ``ApplicationError``s.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar


class ShopError(Exception):
    """Base of every expected failure. Subclasses set ``status`` and a default ``code``."""

    status: ClassVar[int] = HTTPStatus.BAD_REQUEST
    code: str = "bad_request"
    title: ClassVar[str] = "Bad request"
    # Business errors are final: retrying the same input gives the same answer.
    retryable: ClassVar[bool] = False
    # Set where the same request a moment later may go through: answered with
    # ``Retry-After`` (a caller's own ``headers`` win over it).
    retry_after_seconds: ClassVar[int | None] = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        retry = (
            {}
            if self.retry_after_seconds is None
            else {"Retry-After": str(self.retry_after_seconds)}
        )
        self.headers = retry | (headers or {})
        # Extra members of the problem document, camelCase on the wire
        # (e.g. ``unavailableItems`` for out_of_stock).
        self.extra = extra
        super().__init__(self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class ValidationFailed(ShopError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "validation_error"
    title = "The request is not valid"


class ValueOutOfRange(ShopError):
    """A value (or a sum it makes: stock on hand plus an adjustment) past what its column
    holds. Refused before anything is written; in a worker, a non-retryable failure of
    this type instead of an activity retried forever on the database's overflow (units
    coming back to stock in a worker are never refused: ``StockService.put_back``)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_value"
    title = "A value is out of range"


class Unauthenticated(ShopError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(ShopError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"
    title = "Not allowed"


class NotFound(ShopError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"
    title = "Not found"


class Conflict(ShopError):
    status = HTTPStatus.CONFLICT
    code = "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(ShopError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(ShopError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"
    title = "The body is not JSON"


class RateLimited(ShopError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"
    title = "Too many requests"


class DependencyUnavailable(ShopError):
    """A server we depend on (database, Redis, Temporal, a provider) did not answer."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "dependency_unavailable"
    title = "A dependency is unavailable"
    retryable = True


class WebhookSecretMissing(ShopError):
    """No secret to verify a provider's webhooks with (Stripe's, EasyPost's): the
    server's configuration, not the request. 503, so that the provider delivers the event
    again (Stripe retries for three days, EasyPost for a day and more) once the operator
    has set the secret; production refuses to start without it (``core.production``)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "webhook_secret_missing"
    title = "The webhook secret is not configured"


class RedisUnavailable(DependencyUnavailable):
    """Redis down or not answering on a request's path (``api/errors.py`` answers every
    Redis error so): the code of any dependency's outage, told apart from Temporal's in
    the OpenAPI document, whose example for it names Redis."""


class DatabaseUnavailable(DependencyUnavailable):
    """The database out of reach, busy, or undoing the request for a concurrent one: the
    same request a moment later goes through (``api/errors.py`` answers it, with
    ``Retry-After``)."""

    code = "database_unavailable"
    title = "The database is unavailable"


class RetryShortly(DependencyUnavailable):
    """An outage of the moment: the same request a moment later may go through, so it is
    answered with ``Retry-After``, as the database's and Redis' outages are."""

    retry_after_seconds = 1


class TemporalUnavailable(RetryShortly):
    """Temporal out of reach, or not answering about a workflow in time
    (``temporal/client.py``, ``temporal/clients``). Its code is ``dependency_unavailable``
    (``temporal_unavailable`` when no connection could be opened)."""


class InternalError(ShopError):
    """A bug of ours: an exception nothing expected, answered by the API's last handler
    (``api/errors.py``). Never raised on purpose."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "internal_error"
    title = "Internal server error"
