"""The recordings ``record_histories.py`` makes: each drives one workflow on the
time-skipping server and returns its id (``id@run`` for one run of a workflow that
continued as new), and is registered here under the name of the history it records.
One module per workflow family, as in ``workflows/``; each holds the stand-in activities
or scripts its recordings need.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.testing import WorkflowEnvironment

Recording = Callable[[WorkflowEnvironment, str], Awaitable[str]]
RECORDINGS: dict[str, Recording] = {}


def recording(name: str) -> Callable[[Recording], Recording]:
    def register(fn: Recording) -> Recording:
        RECORDINGS[name] = fn
        return fn

    return register
