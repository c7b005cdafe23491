"""Conditional and waiting reads: ``If-None-Match`` (RFC 9110) and ``Prefer: wait``
(RFC 7240), as dependencies that routes take by their ``Annotated`` names."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header

from api.deps import State
from api.problems import raises
from core.errors import ShopError


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


WaitPreference = Annotated[float | None, Depends(requested_wait)]
KnownEtags = Annotated[frozenset[str] | None, Depends(known_etags)]
