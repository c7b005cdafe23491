"""The tax rule of a quote: the most specific configured rate for the destination."""

from __future__ import annotations

import pytest

from core.settings import Settings
from models.quotes import Destination
from services.quotes import tax_rate

RATES = Settings.model_construct(
    tax_rates={"US-MA": 625, "us-ca": 725, "GB": 2000},
    default_tax_country="US",
    default_tax_state="MA",
)


@pytest.mark.parametrize(
    ("destination", "basis_points"),
    [
        (None, 625),  # no destination: the configured default's
        (Destination(country="US", state="MA"), 625),
        (Destination(country="us", state="ca"), 725),  # keys and input in any case
        (Destination(country="US", state="NY"), 0),  # no rate for the state, none for US
        (Destination(country="US"), 0),
        (Destination(country="GB", state="London"), 2000),  # falls back to the country
        (Destination(country="FR"), 0),
    ],
)
def test_the_most_specific_rate_applies(destination: Destination | None, basis_points: int) -> None:
    assert tax_rate(RATES, destination) == basis_points
