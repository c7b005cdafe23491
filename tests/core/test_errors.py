"""``Retry-After`` declared once on the error class (``ShopError.retry_after_seconds``)."""

from __future__ import annotations

from http import HTTPStatus

from core.errors import ShopError, TemporalUnavailable
from services.fulfillment.service import FulfillmentUnavailable
from services.order_cancellation import HANDOVER_RETRY_SECONDS, OrderBeingHandedOver


class _Busy(ShopError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "busy"
    retry_after_seconds = 7


def test_a_class_that_declares_a_retry_after_answers_it() -> None:
    assert _Busy().headers == {"Retry-After": "7"}
    # The caller's headers are kept beside it, and win over the class's on the same name.
    both = _Busy("busy now", headers={"X-Busy": "yes"})
    assert both.headers == {"Retry-After": "7", "X-Busy": "yes"}
    assert _Busy(headers={"Retry-After": "30"}).headers == {"Retry-After": "30"}


def test_errors_without_one_answer_no_retry_after() -> None:
    assert ShopError().headers == {}
    assert ShopError(headers={"X-A": "1"}).headers == {"X-A": "1"}


def test_the_outages_of_the_moment_answer_retry_after_as_before() -> None:
    assert TemporalUnavailable("Temporal did not answer").headers == {"Retry-After": "1"}
    assert FulfillmentUnavailable(code="fulfillment_unavailable").headers == {"Retry-After": "1"}
    handed_over = OrderBeingHandedOver("the order is being handed over")
    assert handed_over.headers == {"Retry-After": str(HANDOVER_RETRY_SECONDS)}
    assert handed_over.detail == "the order is being handed over"
