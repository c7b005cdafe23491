"""Password hashing (argon2id) and the password policy (NIST SP 800-63B-4).

The policy is about length and guessability, never composition: at least
``PASSWORD_MIN_LENGTH`` characters (15 for single-factor use), at most 256, any
characters (Unicode is NFKC-normalised), and not a commonly used, repetitive or
sequential password, nor one built from the account's own email or name.
"""

from __future__ import annotations

import asyncio
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from core.errors import ValidationFailed
from core.settings import Settings

MAX_LENGTH = 256
# zxcvbn's cost grows with length; the first 100 characters decide guessability (zxcvbn
# refuses more than its max_length, 72 by default: a longer password was a 500).
_SCORED_PREFIX = 100
_MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline attacks"
_CONTEXT_WORDS = ("shopweave", "shop", "password")

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def configure_hashing(settings: Settings) -> None:
    """Set the argon2id cost for new hashes in this process (the app factory and the CLI
    call it). Existing hashes keep verifying: each carries its own cost, and a sign-in
    rehashes one made at another cost."""
    global _hasher
    time_cost, memory_kib, parallelism = (
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )
    wanted = (time_cost, memory_kib, parallelism)
    if (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism) == wanted:
        return
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    _dummy_hash.cache_clear()


class WeakPassword(ValidationFailed):
    code = "weak_password"
    title = "The password is too weak"


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, min_length: int, email: str = "", name: str = "") -> None:
    """Raise ``WeakPassword`` (422 ``weak_password``) saying what is wrong."""
    value = normalize(password)
    if len(value) < min_length:
        raise WeakPassword(
            f"use at least {min_length} characters; a few unrelated words make a good one",
            field="password",
        )
    if len(value) > MAX_LENGTH:
        raise WeakPassword(f"use at most {MAX_LENGTH} characters", field="password")
    lowered = value.lower()
    if lowered in _common_passwords():
        raise WeakPassword("this password is on a list of commonly used ones", field="password")
    local_part = email.split("@", 1)[0].lower()
    if local_part and len(local_part) >= 4 and local_part in lowered:
        raise WeakPassword("the password must not contain your email address", field="password")
    inputs = [w for w in (local_part, *name.lower().split(), *_CONTEXT_WORDS) if w]
    result = zxcvbn(value[:_SCORED_PREFIX], user_inputs=inputs, max_length=_SCORED_PREFIX)
    if result["score"] < _MIN_SCORE:
        warning = result["feedback"].get("warning") or "it is easy to guess"
        raise WeakPassword(f"this password is easy to guess: {warning}", field="password")


async def hash_password(password: str) -> str:
    # Hashing takes tens of milliseconds of CPU by design: keep the event loop free.
    return await asyncio.to_thread(_hasher.hash, normalize(password))


async def verify_password(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("an unguessable value that no account has as its password")


async def burn_verify_time(password: str) -> None:
    """Spend what a real verification costs, so an unknown email answers in the same time."""
    await verify_password(_dummy_hash(), password)


UNUSABLE_PASSWORD_HASH = "!deleted"  # not an argon2 hash: never verifies
