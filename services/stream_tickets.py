"""Stream tickets: how a browser's ``EventSource``, which cannot send ``Authorization``,
opens a live stream (``/api/events/stream``, ``/api/orders/{id}/events``) without the
access token in its URL.

A signed-in client asks for a ticket for one stream path (``POST
/api/events/stream-tickets``, with its Bearer token) and opens ``path?ticket=…``. The
ticket is a random string; Redis keeps it (under its SHA-256, so what Redis holds or
dumps opens nothing) with the user, the access token's claims (the stream ends when that
token expires or is revoked, as a Bearer-opened one does), the path, and a resume point
the client may give (``lastEventId``).

- It must be first used within ``STREAM_TICKET_TTL_SECONDS`` (60), on its path only.
- The first use spends it: from then on it only reconnects *that* stream, as an
  EventSource does by itself (same URL, with ``Last-Event-ID``, or ``?lastEventId=`` from
  a polyfill), until its access token expires. A second open without a last event id
  (another tab, a copied URL) is refused.
- One stream per ticket: each use takes the ticket over (``holder``), and a stream whose
  ticket another connection took ends at its next token check. The newest wins, not the
  oldest: a reconnect that comes before the server noticed the old connection gone (a
  network that dropped without a word) is never refused.
- A ``HEAD`` (a link prefetcher, a proxy checking the URL) is checked as its ``GET``
  would be and changes nothing (``redeem(spend=False)``): it neither spends the ticket
  nor takes it over.

Every step is one Lua script, so two API processes using one ticket at once cannot both
be its first use.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from core.errors import Unauthenticated
from core.settings import Settings
from models.users import Role
from services.tokens import AccessClaims

PREFIX = "streams:ticket"
TICKET_PREFIX = "stk_"
# secrets.token_urlsafe(32): 43 characters of base64url.
_TICKET = re.compile(r"^stk_[A-Za-z0-9_-]{43}$")
# How long a spent or unused ticket is kept past its use (its first-use window, or its
# token's life), to answer `stream_ticket_expired` rather than `invalid_stream_ticket`.
KEPT_AFTER_MS = 5 * 60 * 1000

# KEYS[1]: the ticket; ARGV: path, use-within (ms), token expiry (ms since the epoch),
# user, role, session, token id, resume point ('' for none), kept after (ms).
_MINT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], 'path', ARGV[1], 'state', 'minted',
    'use_by', ms + tonumber(ARGV[2]), 'exp', ARGV[3], 'user', ARGV[4], 'role', ARGV[5],
    'sid', ARGV[6], 'jti', ARGV[7], 'last', ARGV[8])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[9]))
return ms + tonumber(ARGV[2])
"""
# KEYS[1]: the ticket; ARGV: path, this connection's id, '1' for a reconnect (it sends
# Last-Event-ID), kept after (ms), '1' to use it ('0': only check it, for a HEAD). The
# first use spends the ticket and keeps it for its token's life; a reconnect takes it
# over.
_REDEEM = """
local t = redis.call('HMGET', KEYS[1], 'path', 'state', 'use_by', 'exp', 'user', 'role',
    'sid', 'jti', 'last')
if not t[1] then return {'invalid'} end
if t[1] ~= ARGV[1] then return {'wrong_stream'} end
local use = ARGV[5] == '1'
if t[2] == 'minted' then
    local now = redis.call('TIME')
    local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    if ms > tonumber(t[3]) then return {'expired'} end
    if use then
        redis.call('HSET', KEYS[1], 'state', 'opened', 'holder', ARGV[2])
        redis.call('PEXPIREAT', KEYS[1], tonumber(t[4]) + tonumber(ARGV[4]))
    end
elseif ARGV[3] == '1' then
    if use then redis.call('HSET', KEYS[1], 'holder', ARGV[2]) end
else
    return {'used'}
end
return {'ok', t[5], t[6], t[7], t[8], t[4], t[9]}
"""


class InvalidStreamTicket(Unauthenticated):
    code = "invalid_stream_ticket"
    title = "The stream ticket is not valid"


class StreamTicketExpired(Unauthenticated):
    code = "stream_ticket_expired"
    title = "The stream ticket has expired"


class StreamTicketUsed(Unauthenticated):
    code = "stream_ticket_used"
    title = "The stream ticket has been used"


class StreamTicketWrongStream(Unauthenticated):
    code = "stream_ticket_wrong_stream"
    title = "The stream ticket is for another stream"


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str
    path: str
    use_by: datetime


@dataclass(frozen=True)
class OpenedTicket:
    """A ticket a stream was opened with: whose it is, and this connection's hold on it."""

    claims: AccessClaims
    last_event_id: str | None
    key: str
    holder: str


def _key(ticket: str) -> str:
    return f"{PREFIX}:{hashlib.sha256(ticket.encode()).hexdigest()}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class StreamTickets:
    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> StreamTickets:
        return cls(redis, ttl_seconds=settings.stream_ticket_ttl_seconds)

    def __init__(self, redis: Redis, *, ttl_seconds: float) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_seconds * 1000))

    async def mint(
        self, claims: AccessClaims, path: str, last_event_id: str | None = None
    ) -> IssuedTicket:
        """A new ticket for ``path``, on behalf of the access token ``claims`` are of."""
        ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
        use_by = await self.redis.eval(
            _MINT,
            1,
            _key(ticket),
            path,
            self._ttl_ms,
            _ms(claims.expires_at),
            claims.user_id,
            str(claims.role),
            claims.session_id,
            claims.jti,
            last_event_id or "",
            KEPT_AFTER_MS,
        )
        return IssuedTicket(ticket, path, datetime.fromtimestamp(int(use_by) / 1000, UTC))

    async def redeem(
        self, ticket: str, path: str, *, reconnect: bool, spend: bool = True
    ) -> OpenedTicket:
        """The ticket's claims, for a stream of ``path`` opening now (``reconnect``: the
        request carries a last event id), which holds the ticket from now on; or why not
        (401). Without ``spend`` (a ``HEAD``) it is checked as that use would be and left
        as it was: not spent, not taken over (this stream never holds it). Whether its
        token still holds is the caller's to ask."""
        if not _TICKET.match(ticket):
            raise InvalidStreamTicket("this is not a stream ticket (stk_…)")
        key, holder = _key(ticket), uuid.uuid4().hex
        answer = await self.redis.eval(
            _REDEEM, 1, key, path, holder, int(reconnect), KEPT_AFTER_MS, int(spend)
        )
        outcome, *fields = (_text(value) for value in answer)
        if outcome == "invalid":
            raise InvalidStreamTicket(
                "no such stream ticket: get one from POST /api/events/stream-tickets"
            )
        if outcome == "wrong_stream":
            raise StreamTicketWrongStream(f"this stream ticket is not for {path}")
        if outcome == "expired":
            raise StreamTicketExpired(
                f"a stream ticket is used within {self.ttl_seconds:g} s of being issued; "
                "get a new one"
            )
        if outcome == "used":
            raise StreamTicketUsed(
                "this stream ticket opened a stream already; only that stream's reconnects "
                "(with Last-Event-ID) may use it again: get a new one"
            )
        user_id, role, session_id, jti, expires_ms, last = fields
        claims = AccessClaims(
            user_id=user_id,
            role=Role(role),
            session_id=session_id,
            jti=jti,
            expires_at=datetime.fromtimestamp(int(expires_ms) / 1000, UTC),
        )
        return OpenedTicket(claims, last or None, key, holder)

    async def holds(self, opened: OpenedTicket) -> bool:
        """Whether the stream opened with ``opened`` still holds its ticket (no later
        connection took it over, and it has not lapsed)."""
        return _text(await self.redis.hget(opened.key, "holder")) == opened.holder


def _text(value: bytes | str | int | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
