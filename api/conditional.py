"""Conditional and waiting reads: ``If-None-Match`` (RFC 9110), ``Prefer: wait``
(RFC 7240) and the order statuses a wait is for (``?until=``), as dependencies that
routes take by their ``Annotated`` names."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Query

from api.deps import State
from api.problems import raises
from core.errors import ShopError, ValidationFailed
from models.orders import OrderStatus


class InvalidPreference(ShopError):
    code = "invalid_preference"
    title = "Invalid Prefer header"


class InvalidEntityTag(ShopError):
    code = "invalid_if_none_match"
    title = "Invalid If-None-Match header"


# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
_ENTITY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')
_ENTITY_TAGS = re.compile(rf"{_ENTITY_TAG.pattern}(?:[ \t]*,[ \t]*{_ENTITY_TAG.pattern})*")
_WAIT = re.compile(r'^"?(\d{1,9})"?$')
ANY_TAG = "*"


@raises(InvalidPreference)
def requested_wait(
    state: State,
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (RFC 7240), with `If-None-Match`: wait up to N seconds "
            "(at most `ORDER_WAIT_MAX_SECONDS`, 30 by default) for the order to change",
            examples=["wait=30"],
        ),
    ] = None,
) -> float | None:
    """The seconds the client asked to wait (clamped to the maximum), None if it did not
    ask. Other preferences are ignored, as RFC 7240 says."""
    # One header: its schema is a plain string (RFC 7240 lets a server ignore what it
    # does not know, so there is no other form to refuse); preferences are comma-separated.
    wait: float | None = None
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        seconds = _WAIT.match(value.strip())
        if seconds is None:
            raise InvalidPreference(
                f"`Prefer: wait=N` takes whole seconds, got {preference.strip()!r}"
            )
        wait = min(float(seconds.group(1)), state.settings.order_wait_max_seconds)
    return wait


@raises(InvalidEntityTag)
def known_etags(
    if_none_match: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="The ETag(s) the client has; unchanged, the answer is 304",
            examples=['"3f9a1c0e7b2d4a5f8e6c1b0a9d8e7f6a"'],
        ),
    ] = None,
) -> frozenset[str] | None:
    """The entity tags of ``If-None-Match`` without their weak prefix (If-None-Match
    compares weakly), ``{"*"}`` for ``*``, None without the header."""
    if if_none_match is None:
        return None
    if if_none_match.strip() == ANY_TAG:
        return frozenset({ANY_TAG})
    if not _ENTITY_TAGS.fullmatch(if_none_match.strip()):
        raise InvalidEntityTag(
            'If-None-Match takes quoted entity tags (`"…"`, `W/"…"`) or `*`, '
            f"got {if_none_match[:100]!r}"
        )
    return frozenset(t.removeprefix("W/") for t in _ENTITY_TAG.findall(if_none_match))


def matches(etag: str, known: frozenset[str] | None) -> bool:
    return known is not None and (ANY_TAG in known or etag in known)


INVALID_UNTIL = (ValidationFailed, "invalid_until")
STATUS_NAMES = frozenset(status.value for status in OrderStatus)
UNTIL_EXAMPLES = {
    "confirmed": {
        "summary": "Answer once the order is confirmed (or settled: queued, failed, cancelled)",
        "value": "confirmed",
    },
    "confirmed or 3-D Secure": {
        "summary": "Also answer if the customer must authenticate the payment",
        "value": "confirmed,requires_action",
    },
    "settled": {
        "summary": "Answer only once the order is settled",
        "value": "fulfillment_queued",
    },
}


@raises(INVALID_UNTIL)
def awaited_statuses(
    until: Annotated[
        str | None,
        Query(
            max_length=200,
            description="With `Prefer: wait`: the statuses to wait for, comma-separated. "
            "The long-poll answers only when the order is in one of them or settled "
            "(`fulfillment_queued` or later, `failed`, `cancelled`), or when the wait runs "
            "out; other changes do not answer",
            openapi_examples=UNTIL_EXAMPLES,
        ),
    ] = None,
) -> frozenset[OrderStatus] | None:
    """The statuses a long-poll waits for, None for any change."""
    if until is None:
        return None
    names = [name.strip() for name in until.split(",")]
    unknown = [name for name in names if name not in STATUS_NAMES]
    if unknown:
        raise ValidationFailed(
            f"until: {', '.join(repr(n) for n in unknown)} is not an order status "
            f"(one or more of {', '.join(OrderStatus)}, comma-separated)",
            code=INVALID_UNTIL[1],
            field="until",
        )
    return frozenset(OrderStatus(name) for name in names)


WaitPreference = Annotated[float | None, Depends(requested_wait)]
KnownEtags = Annotated[frozenset[str] | None, Depends(known_etags)]
AwaitedStatuses = Annotated[frozenset[OrderStatus] | None, Depends(awaited_statuses)]
