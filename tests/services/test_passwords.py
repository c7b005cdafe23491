"""Password hashing at a configurable argon2id cost."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings
from services import passwords

PASSWORD = "violet tangerine orbit lamp 42"


@pytest.fixture
def restore_cost(settings: Settings) -> object:
    yield None
    passwords.configure_hashing(settings)


@pytest.mark.usefixtures("restore_cost")
async def test_the_cost_is_configurable_and_old_hashes_keep_verifying() -> None:
    passwords.configure_hashing(
        Settings(
            password_hash_time_cost=1, password_hash_memory_kib=8192, password_hash_parallelism=1
        )
    )
    cheap = await passwords.hash_password(PASSWORD)
    assert "$m=8192,t=1,p=1$" in cheap
    passwords.configure_hashing(Settings())  # the default: argon2-cffi's profile
    strong = await passwords.hash_password(PASSWORD)
    assert "$m=65536,t=3,p=4$" in strong
    # Each hash carries its cost: both verify; the cheap one is due for a rehash.
    assert await passwords.verify_password(cheap, PASSWORD)
    assert await passwords.verify_password(strong, PASSWORD)
    assert not await passwords.verify_password(cheap, "another password entirely")
    assert passwords.needs_rehash(cheap)
    assert not passwords.needs_rehash(strong)


def test_production_refuses_a_cost_below_owasps_floor() -> None:
    with pytest.raises(ValidationError, match="at least 19456"):
        Settings(shop_env="production", password_hash_memory_kib=8192, jwt_secret="x" * 40)
    with pytest.raises(ValidationError, match="TIME_COST at least 2"):
        Settings(shop_env="production", password_hash_time_cost=1, jwt_secret="x" * 40)
    assert Settings(shop_env="production", jwt_secret="x" * 40).password_hash_time_cost == 3


def test_a_long_password_up_to_the_limit_is_judged_not_a_server_error() -> None:
    # zxcvbn refuses more than 72 characters by default; schemathesis found the 500.
    long_one = " ".join(["violet harbour lanterns drift slowly over amber tides"] * 4)[:200]
    passwords.check_policy(long_one, min_length=15, email="ada@example.com", name="Ada")
