"""Failed-login throttling, per email and per client IP, with the counts in Redis.

Each failure increments a counter that lives for the window; over the limit, attempts
are refused (429 with Retry-After) until the window runs out, even with the right
password, so guessing cannot continue. A successful login clears the email's counter.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from core.errors import RateLimited

PREFIX = "throttle:login"


def _key(kind: str, value: str) -> str:
    # Hashed so that emails do not sit in Redis in clear text.
    return f"{PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


_COUNT_FAILURE = """
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 0
"""


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"


class LoginThrottle:
    def __init__(self, redis: Redis, *, per_email: int, per_ip: int, window_seconds: int) -> None:
        self.redis = redis
        self.limits = {"email": per_email, "ip": per_ip}
        self.window = window_seconds

    def _keys(self, email: str, ip: str | None) -> dict[str, str]:
        keys = {"email": _key("email", email)}
        if ip:
            keys["ip"] = _key("ip", ip)
        return keys

    async def check(self, email: str, ip: str | None) -> None:
        """Refuse the attempt before any password work if a limit is already reached."""
        keys = self._keys(email, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys.values():
                pipe.get(key)
                pipe.pttl(key)
            values = await pipe.execute()
        for i, kind in enumerate(keys):
            count, ttl_ms = values[2 * i], values[2 * i + 1]
            if count is not None and int(count) >= self.limits[kind] and ttl_ms > 0:
                retry_after = max(1, -(-int(ttl_ms) // 1000))
                raise TooManyAttempts(
                    f"too many failed sign-in attempts; try again in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                    retry_after=retry_after,
                )

    async def failed(self, email: str, ip: str | None) -> None:
        # The window starts at the first failure and does not slide. (EXPIRE NX would
        # say this in one command, but needs Redis 7; the embedded server is 6.2.)
        keys = list(self._keys(email, ip).values())
        await self.redis.eval(_COUNT_FAILURE, len(keys), *keys, self.window)

    async def succeeded(self, email: str) -> None:
        await self.redis.delete(_key("email", email))
