"""A provider's sandbox stands in for it only while its real key is unset.

With the real key set (a staging deployment outside production, say), a mounted
sandbox would still sign webhooks, with the real webhook secret, and post them to our
own endpoints: anyone could have it "confirm" a payment or "deliver" a parcel.
"""

from __future__ import annotations

import pytest

from api.app import create_app
from core.settings import Settings
from tests.api.route_table import operations

PREFIXES = {
    "stripe_secret_key": ("/_sandbox/stripe",),
    "sendgrid_api_key": ("/_sandbox/sendgrid", "/_sandbox/mail"),
    "hubspot_access_token": ("/_sandbox/hubspot",),
    "easypost_api_key": ("/_sandbox/easypost",),
}
REAL_KEYS = {
    "stripe_secret_key": "sk_live_not_a_sandbox_key",
    "sendgrid_api_key": "SG.not-a-sandbox-key",
    "hubspot_access_token": "pat-na1-not-a-sandbox-token",
    "easypost_api_key": "EZAK_not_a_sandbox_key",
}


def _sandbox_paths(settings: Settings) -> set[str]:
    return {op.path for op in operations(create_app(settings)) if op.path.startswith("/_sandbox")}


def _under(paths: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {p for p in paths if p.startswith(prefixes)}


def test_every_sandbox_is_mounted_without_real_keys(settings: Settings) -> None:
    paths = _sandbox_paths(settings)
    for key, prefixes in PREFIXES.items():
        assert _under(paths, prefixes), key


@pytest.mark.parametrize("key", sorted(PREFIXES))
def test_a_sandbox_is_not_mounted_once_its_real_key_is_set(settings: Settings, key: str) -> None:
    real = Settings.model_validate(settings.model_dump() | {key: REAL_KEYS[key]})
    paths = _sandbox_paths(real)
    assert _under(paths, PREFIXES[key]) == set()
    # The other providers keep their sandboxes.
    for other, prefixes in PREFIXES.items():
        if other != key:
            assert _under(paths, prefixes), other
