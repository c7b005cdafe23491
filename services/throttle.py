"""Fixed-window counters in Redis (``count_in_window``), and failed-login throttling on
them, per email and per client IP.

Each attempt increments a counter that lives for the window, before the password is
checked; over the limit, attempts are refused (429 with Retry-After) until the window
runs out, even with the right password, so guessing cannot continue. A successful
sign-in clears the email's counter and takes its attempt off the address's.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from core.errors import RateLimited
from core.settings import Settings
from services.users import normalize_email

PREFIX = "throttle:login"


def _key(kind: str, value: str) -> str:
    # Hashed so that emails do not sit in Redis in clear text.
    return f"{PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


# KEYS: the counters; ARGV[1]: window seconds; ARGV[2]: how much to add; ARGV[3..]: each
# counter's limit.
_COUNT = """
local over, ttl = 0, 0
local amount = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
    local count = redis.call('INCRBY', key, amount)
    if count == amount then redis.call('EXPIRE', key, ARGV[1]) end
    if count > tonumber(ARGV[i + 2]) then
        over = 1
        ttl = math.max(ttl, redis.call('PTTL', key))
    end
end
return {over, ttl}
"""
_FORGIVE = """
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) and tonumber(redis.call('GET', KEYS[2])) > 0 then
    redis.call('DECR', KEYS[2])
end
return 0
"""


async def count_in_window(
    redis: Redis, limits: dict[str, int], window_seconds: int, amount: int = 1
) -> int | None:
    """Add ``amount`` to each counter (key → limit), atomically, counting first so that
    parallel callers cannot all slip under a limit. Over any limit: the seconds until
    its window ends (the ``Retry-After``), else None. A counter lives for its window."""
    over, ttl_ms = await redis.eval(
        _COUNT, len(limits), *limits, window_seconds, amount, *limits.values()
    )
    if not int(over):
        return None
    return max(1, -(-int(ttl_ms) // 1000))


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"


class LoginThrottle:
    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> LoginThrottle:
        return cls(
            redis,
            per_email=settings.login_max_failures_per_email,
            per_ip=settings.login_max_failures_per_ip,
            window_seconds=settings.login_throttle_window_seconds,
        )

    def __init__(self, redis: Redis, *, per_email: int, per_ip: int, window_seconds: int) -> None:
        self.redis = redis
        self.limits = {"email": per_email, "ip": per_ip}
        self.window = window_seconds

    def _keys(self, email: str, ip: str | None) -> dict[str, str]:
        keys = {"email": _key("email", email)}
        if ip:
            keys["ip"] = _key("ip", ip)
        return keys

    async def attempt(self, email: str, ip: str | None) -> None:
        """Count this attempt, then refuse it if a limit is exceeded: counting first and
        atomically, so parallel attempts cannot all slip under the limit."""
        keys = self._keys(email, ip)
        limits = {key: self.limits[kind] for kind, key in keys.items()}
        retry_after = await count_in_window(self.redis, limits, self.window)
        if retry_after is not None:
            raise TooManyAttempts(
                f"too many failed sign-in attempts; try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
                retry_after=retry_after,
            )

    async def unlock(self, *, email: str | None = None, ip: str | None = None) -> bool:
        """Staff lift a lock-out at once (a locked-out customer who proved who they are,
        an office whose address tripped the limit). True if there was anything to lift."""
        keys = ([_key("email", normalize_email(email))] if email else []) + (
            [_key("ip", ip)] if ip else []
        )
        return bool(keys) and bool(await self.redis.delete(*keys))

    async def succeeded(self, email: str, ip: str | None) -> None:
        """A right password: the email's count starts over, and the attempt no longer
        counts against the address (an office behind one address is not punished)."""
        await self.redis.eval(_FORGIVE, 2, _key("email", email), _key("ip", ip or "-"))
