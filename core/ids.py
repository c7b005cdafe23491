"""Prefixed, lexicographically sortable ids such as ``ord_01JD3K…`` (a ULID after the prefix).

A ULID is 48 bits of millisecond time then 80 random bits, in Crockford base32. Within
one process ids made in the same millisecond stay ordered (the random part is bumped).
"""

from __future__ import annotations

import os
import threading
import time
from enum import StrEnum

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_random = 0


class IdPrefix(StrEnum):
    USER = "user"
    PRODUCT = "prod"
    CATEGORY = "cat"
    CART = "cart"
    ORDER = "ord"
    PAYMENT = "pay"
    EVENT = "evt"
    REQUEST = "req"
    ADDRESS = "addr"
    SESSION = "sess"
    TOKEN = "rtok"
    MESSAGE = "msg"
    ANALYTICS = "ae"
    WORKFLOW_START = "wfs"
    REVIEW = "rev"
    DISCOUNT = "disc"
    COUPON = "cpn"
    REDEMPTION = "red"
    MOVEMENT = "mov"
    RESERVATION = "resv"
    PURCHASE_ORDER = "po"
    CART_ITEM = "citem"
    CART_SHARE = "share"
    ORDER_LINE = "oline"
    ORDER_EVENT = "oevt"
    PAYMENT_EVENT = "pevt"
    FULFILLMENT = "ful"
    FULFILLMENT_LINE = "fline"
    SHIPMENT = "shp"
    SHIPMENT_LINE = "sline"
    LABEL = "lbl"
    TRACKING_EVENT = "trk"
    RETURN = "ret"
    ADDRESS_CORRECTION = "corr"
    RETURN_LINE = "rline"
    NOTIFICATION = "ntf"
    WEBHOOK_ENDPOINT = "whk"
    WEBHOOK_DELIVERY = "msg"
    WEBHOOK_ATTEMPT = "wha"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID, monotonic within this process."""
    global _last_ms, _last_random
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_random + 1
            if rand >> _RANDOM_BITS:  # 2**80 ids in one millisecond: move to the next one
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big")
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_random = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


def new_id(prefix: IdPrefix | str) -> str:
    """A new id such as ``ord_01JD3K7Q8M…``."""
    return f"{prefix}_{ulid()}"


def id_from(prefix: IdPrefix | str, now_ms: int, random_bits: int) -> str:
    """A prefixed ULID from given parts: a workflow names rows with its own clock and
    seeded randomness (``workflow.now()``, ``workflow.random()``), so a replay names
    them the same."""
    return f"{prefix}_{_encode(now_ms, 10)}{_encode(random_bits & ((1 << _RANDOM_BITS) - 1), 16)}"


def id_after(value: str) -> str:
    """The next id after ``value`` in sort order (same prefix): for a writer that must
    keep a sequence of ids increasing whatever another process's clock said."""
    prefix, _, body = value.rpartition("_")
    number = 0
    for char in body.upper():
        number = (number << 5) | _DECODE[char]
    return f"{prefix}_{_encode(number + 1, 26)}"


def id_timestamp_ms(value: str) -> int:
    """The creation time (ms since the epoch) encoded in a prefixed id."""
    body = value.rsplit("_", 1)[-1]
    ms = 0
    for char in body[:10].upper():
        ms = (ms << 5) | _DECODE[char]
    return ms


def is_valid_id(value: str, prefix: IdPrefix | str) -> bool:
    head, sep, body = value.partition("_")
    return (
        sep == "_"
        and head == str(prefix)
        and len(body) == 26
        and all(c in _DECODE for c in body)
        and body[0] in "01234567"
    )
