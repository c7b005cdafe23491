"""What every table shares: the constraint naming convention and timestamp columns."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    GetCoreSchemaHandler,
    Tag,
)
from pydantic import Field as PydanticField
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, PydanticCustomError
from sqlalchemy import DateTime, MetaData, func
from sqlmodel import Field, SQLModel

# fastapi-best-practices: predictable constraint and index names, so migrations can
# refer to them and autogenerate never invents random ones.
NAMING_CONVENTION = {
    "ix": "%(column_0_label)s_idx",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, values: type[StrEnum]) -> str:
    """A CHECK constraint's text: ``column`` holds one of the enum's values."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def one_line(value: str | None) -> str | None:
    """A name or title (a field validator): its runs of white space made one space;
    blank is refused (``minLength`` alone lets "   " through)."""
    if value is None:
        return None
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be blank")
    return value


def created_at_field() -> datetime:
    field: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "nullable": False},
    )
    return field


def updated_at_field() -> datetime:
    """Set on insert; services set it on every update (``onupdate`` covers ORM flushes)."""
    field: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now(), "nullable": False, "onupdate": utcnow},
    )
    return field


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_datetime(value: object) -> object:
    # Pydantic's lax mode reads a number (or a numeric string, as in a query) as seconds
    # since 1970: `?to=0.5` would be a date in 1970. On the wire a time is ISO 8601 text.
    if isinstance(value, datetime) or (isinstance(value, str) and not _NUMBER.fullmatch(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time, such as 2026-01-31T12:00:00Z")


def _utc_representable(value: datetime) -> datetime:
    # The database stores times in UTC: 0001-01-01T00:00:00+05:00 or
    # 9999-12-31T23:59:59-01:00 is a valid ISO 8601 time whose UTC falls outside Python's
    # years 1 to 9999, and the driver's conversion failed with a 500.
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("the time is outside the years 1 to 9999 in UTC") from None
    return value


# Request fields: strict at the edge (STYLE: the document tells the truth). JSON numbers,
# booleans and times are taken only as themselves: `"delta": false` or `"isDefault": 0`
# answer 422 instead of being coerced. Use StrictInt and StrictBool (pydantic) likewise.
IsoDatetime = Annotated[
    datetime, BeforeValidator(_iso_datetime), AfterValidator(_utc_representable)
]


# The longest address SMTP carries (RFC 5321 §4.5.3.1.1 and §4.5.3.1.3, as RFC 3696's
# erratum 1690 counts it): 64 octets before the @-sign, 254 in all. ``EmailStr``
# (email-validator) checks the whole length but not the local part's (only in its strict
# mode): an address no mail server takes was registered, and its welcome email bounced.
EMAIL_LOCAL_PART_MAX_OCTETS = 64
EMAIL_MAX_LENGTH = 254


def _local_part_fits(email: str) -> str:
    over = len(email.rpartition("@")[0].encode()) - EMAIL_LOCAL_PART_MAX_OCTETS
    if over > 0:
        octets = "octet" if over == 1 else "octets"
        # As ``EmailStr`` refuses an address that is not one: the same type and wording.
        raise PydanticCustomError(
            "value_error",
            "value is not a valid email address: {reason}",
            {"reason": f"The part before the @-sign is too long ({over} {octets} too many)."},
        )
    return email


# Every email address a request takes (sign-up, a profile's change): normalised as
# ``EmailStr`` does, within SMTP's lengths.
Email = Annotated[
    EmailStr,
    AfterValidator(_local_part_fits),
    PydanticField(max_length=EMAIL_MAX_LENGTH, examples=["ada@example.com"]),
]


# Text a person typed (a name, an address, a review): no control characters and no
# bidirectional formatting characters. An override (U+202A to U+202E) or isolate (U+2066
# to U+2069) makes what follows display reversed in staff tools and emails ("Trojan
# source"-style spoofing: a product or a shopper's name that reads as another), and a C0
# or C1 control has no place in a name. A tab is white space (names collapse it); a
# newline, only where the field is several lines of text (``MultilineText``). NUL is
# refused before any of this, for every field (api/guards.py). Request fields only:
# answers, events and workflow inputs keep ``str``, so rows written before still read.
CONTROL_CHARACTER = "control_character"
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_ONE_LINE_FORBIDDEN = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
_MULTILINE_FORBIDDEN = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")


_CONTROL_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN"}


def _refuse_controls(forbidden: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        found = forbidden.search(value)
        if found is None:
            return value
        char = found.group()
        name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character")
        raise PydanticCustomError(
            CONTROL_CHARACTER,
            "must be {what}; found U+{code} ({name}) at character {position}",
            {
                "what": what,
                "code": f"{ord(char):04X}",
                "name": name,
                "position": found.start() + 1,
            },
        )

    return check


# One line: a name, a title, a code, a part of an address.
ONE_LINE_TEXT = AfterValidator(
    _refuse_controls(
        _ONE_LINE_FORBIDDEN,
        "one line of text without control characters or bidirectional overrides",
    )
)
# Several lines (a description, a review, a note): newlines (LF, CRLF) and tabs too.
MULTILINE_TEXT = AfterValidator(
    _refuse_controls(
        _MULTILINE_FORBIDDEN,
        "text without control characters (but newlines and tabs) or bidirectional overrides",
    )
)
# The types; a field with constraints of its own that change the text (strip_whitespace)
# puts the check after them: ``Annotated[str, StringConstraints(...), MULTILINE_TEXT]``.
SingleLineText = Annotated[str, ONE_LINE_TEXT]
MultilineText = Annotated[str, MULTILINE_TEXT]


@dataclass(frozen=True)
class UnionError:
    """On a union in a request (``Annotated[A | B, UnionError(...)]``): one error at the
    field, in the client's words, where pydantic gives one per member, each named in the
    location by its internal schema (``properties.level.list[nullable[union[bool,int,
    float,str]]]``) or its class. ``tests/api/test_request_text.py`` holds every union
    of a request body to it (tagged unions name their members by ``union_tag``)."""

    type: str
    message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        union = cast("dict[str, Any]", schema["schema"] if schema["type"] == "nullable" else schema)
        if union["type"] != "union":
            raise TypeError(f"UnionError is for a union, not {union['type']}")
        union["custom_error_type"] = self.type
        union["custom_error_message"] = self.message
        return schema


# A tagged union's tag shows in a validation error's location ("body", tag, field, ...):
# tags made by union_tag carry this mark, so the API's problem answers can leave them out
# and name the field as the client sent it (api/errors.py).
UNION_TAG_MARK = "~"


def union_tag(name: str) -> Tag:
    """The Tag of one member of a discriminated union, left out of error locations."""
    return Tag(f"{UNION_TAG_MARK}{name}")


class CamelModel(BaseModel):
    """Wire schemas: snake_case in Python, camelCase on the wire (ARCHITECTURE §4)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(CamelModel):
    """A JSON request body of the public API, or a part of one (an address in an order).

    A field it does not know is refused, 422 ``unknown_field`` (api/errors.py), never
    ignored: ``{"isActive": false}`` for ``active`` would otherwise answer 200 and change
    nothing. Only what clients send derives from it: answers, workflow inputs, snapshots
    and events keep pydantic's default (extra fields ignored), so that rows and histories
    written by another version still read. The providers' webhooks and the sandboxes take
    the providers' whole payloads and do not use it. ``tests/api/test_unknown_fields.py``
    holds every body of ``/api`` to it."""

    model_config = ConfigDict(extra="forbid")


class Page(CamelModel, Generic[T]):
    """A page of a list: ``items`` and the ``total`` across all pages."""

    items: list[T]
    total: int
    page: int
    limit: int
