from __future__ import annotations

import time

import pytest

from core.ids import IdPrefix, id_timestamp_ms, is_valid_id, new_id, ulid


def test_ids_carry_their_prefix_and_a_26_char_ulid() -> None:
    order_id = new_id(IdPrefix.ORDER)
    prefix, body = order_id.split("_")
    assert prefix == "ord"
    assert len(body) == 26
    assert is_valid_id(order_id, IdPrefix.ORDER)
    assert not is_valid_id(order_id, IdPrefix.USER)


def test_ids_sort_in_creation_order_even_within_one_millisecond() -> None:
    ids = [new_id(IdPrefix.EVENT) for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_made_later_sort_later() -> None:
    first = ulid(now_ms=1_700_000_000_000)
    second = ulid(now_ms=1_700_000_000_001 + 10_000)
    assert first < second


def test_the_creation_time_can_be_read_back() -> None:
    before = int(time.time() * 1000)
    value = new_id(IdPrefix.CART)
    after = int(time.time() * 1000)
    assert before <= id_timestamp_ms(value) <= after + 1


@pytest.mark.parametrize(
    "value",
    ["ord_", "ord_01J", "ord-01JD3K7Q8MZZZZZZZZZZZZZZZZ", "ord_01JD3K7Q8MZZZZZZZZZZZZZZZU", "x"],
)
def test_malformed_ids_are_not_valid(value: str) -> None:
    assert not is_valid_id(value, IdPrefix.ORDER)
