"""The shared request types of ``models.base``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from models.base import IsoDatetime

TIME = TypeAdapter(IsoDatetime)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-23:59"])
def test_a_time_outside_python_s_years_in_utc_is_refused(text: str) -> None:
    """Valid ISO 8601, but stored in UTC it is year 0 or 10000: the driver's conversion
    failed with a 500 (GET /api/admin/orders?from=…, a discount's endsAt)."""
    with pytest.raises(ValidationError, match="outside the years 1 to 9999 in UTC"):
        TIME.validate_python(text)


def test_the_edges_themselves_are_times() -> None:
    assert TIME.validate_python("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert TIME.validate_python("9999-12-31T23:59:59+01:00").year == 9999


def test_a_number_is_not_a_time() -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        TIME.validate_python("0.5")
