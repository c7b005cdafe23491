"""A ``shop`` command whose PostgreSQL or Redis does not answer says so in one line.

``shop dev`` checks the servers it is given before it starts anything
(``cli/stack/probes.py``). Every other command meets them when it first needs them, and a
connection that would not open came out as the driver's traceback (SQLAlchemy's and
asyncpg's, or redis-py's: 100 to 170 lines ending in ``ConnectionRefusedError``). The
usual cause is a ``stack.env`` left by a ``shop dev`` that was killed before its clean-up,
or a ``DATABASE_URL``/``REDIS_URL`` pointing nowhere.
"""

from __future__ import annotations

import socket

# What a connection that would not open (or was dropped) raises, somewhere in the chain
# of what the driver raised: refused, reset or aborted, or a name that does not resolve.
# Not a timeout: a command's own waits end in TimeoutError too.
CONNECTION_ERRORS = (ConnectionError, socket.gaierror)
HINT = (
    "is the `shop dev` of this data dir running (its stack.env names the servers), "
    "or are DATABASE_URL and REDIS_URL right?"
)


def unreachable(exc: BaseException) -> str | None:
    """The line to print when ``exc`` is, or was caused by, a connection that failed;
    None for anything else (a bug keeps its traceback)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    failed: BaseException | None = None
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, CONNECTION_ERRORS) or _every_address_failed(link):
            # The innermost says it best: the socket's own error, not a wrapper naming
            # it again (``core.db.DatabaseUnreachable``).
            failed = link
        link = link.__cause__ or link.__context__
    return None if failed is None else f"cannot connect: {_reason(failed)}; {HINT}"


def _every_address_failed(exc: BaseException) -> bool:
    """asyncio's error when each address of a host (``localhost``: ::1 and 127.0.0.1)
    refused: a plain OSError listing them."""
    return type(exc) is OSError and str(exc).startswith("Multiple exceptions")


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
