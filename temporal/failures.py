"""Failures small enough for the Temporal server to keep as they are.

The server keeps a retrying activity's last failure in the workflow's mutable state (what
the UI and ``temporal workflow describe`` show under *Pending Activities*), and replaces
one larger than ``limit.mutableStateActivityFailureSize.error`` (4 KiB by default) with
its own ``"Failure exceeds size limit."``, the original cut down beneath it. Our activity
errors carry a chain (the ``ApplicationError``, our typed error, the client library's),
each with its stack trace: a provider outage's chain came to about 6 KiB, so the operator
read the server's words where the provider's answer should be. The converter below keeps
every message and type and shortens the stack traces (from their start: the innermost
frames, where the error was raised, are kept) until the failure fits.
"""

from __future__ import annotations

import dataclasses

import temporalio.api.failure.v1
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter

# Under the server's 4 KiB, with room for what it adds around the failure.
FAILURE_BYTES = 3 * 1024
# What a stack trace is cut to before it is dropped altogether.
MIN_STACK_CHARS = 80
LONG_MESSAGE_CHARS = 300


class BoundedFailureConverter(DefaultFailureConverter):
    """The default conversion, then the failure made to fit ``FAILURE_BYTES``."""

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        fit(failure)


def _chain(failure: temporalio.api.failure.v1.Failure) -> list[temporalio.api.failure.v1.Failure]:
    chain = [failure]
    while chain[-1].HasField("cause"):
        chain.append(chain[-1].cause)
    return chain


def fit(failure: temporalio.api.failure.v1.Failure, limit: int = FAILURE_BYTES) -> None:
    """Shorten ``failure`` in place to at most ``limit`` bytes if it can: the longest stack
    trace of the chain is halved (its last lines kept) until it fits, then, if messages
    alone are too long, the causes' messages are cut, the top one's last."""
    chain = _chain(failure)
    while failure.ByteSize() > limit:
        longest = max(chain, key=lambda f: len(f.stack_trace))
        if not longest.stack_trace:
            break
        kept = len(longest.stack_trace) // 2
        longest.stack_trace = "" if kept < MIN_STACK_CHARS else "…" + longest.stack_trace[-kept:]
    for level in [*reversed(chain[1:]), failure]:
        if failure.ByteSize() <= limit:
            break
        if len(level.message) > LONG_MESSAGE_CHARS:
            level.message = level.message[:LONG_MESSAGE_CHARS] + "…"


# What every client (and so every worker) of ours converts with.
data_converter: DataConverter = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=BoundedFailureConverter
)
