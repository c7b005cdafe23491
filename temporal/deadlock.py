"""How long a workflow task may run without yielding before the SDK calls it deadlocked.

The Python SDK fixes this at 2 s (``temporalio.worker._workflow``: ``_deadlock_timeout_seconds``;
the other SDKs take it as a worker option, and a ``deadlock_detection_timeout`` option for
this one was proposed upstream, sdk-python#1614, and not merged), with ``debug_mode`` its
only way out, which turns detection off and runs workflow code on the event loop's thread.

A detection is more than a failed task: the SDK raises an asynchronous exception into the
workflow's thread, wherever that thread is. On a host starved of CPU, a task that is merely
slow is taken for a deadlock: a full garbage collection of a large heap in the workflow's
thread, at a load of ten on two cores, ran past 2 s in our CI, the interrupt landed in a
socket's finalizer that the collection was running (an "exception ignored"), and that
test process's workers then never finished shutting down. ``WORKFLOW_DEADLOCK_TIMEOUT_SECONDS``
sets the limit: the SDK's 2 s by default; raise it on hosts whose workers share their
CPU with much else (the test suite, which runs the API, the workers and three embedded
servers per process on two cores, uses 30 s).
"""

from __future__ import annotations

from temporalio.worker import Worker


def with_deadlock_timeout(worker: Worker, seconds: int) -> Worker:
    """``worker`` with workflow tasks allowed ``seconds`` before they count as deadlocked
    (a worker of activities only has nothing to change; debug mode keeps detection off)."""
    workflows = worker._workflow_worker
    if workflows is None:
        return worker
    if not hasattr(workflows, "_deadlock_timeout_seconds"):
        # The SDK moved its limit: fail at start rather than run with 2 s unknowingly.
        raise RuntimeError(
            "temporalio no longer keeps _WorkflowWorker._deadlock_timeout_seconds: "
            "see temporal/deadlock.py"
        )
    if workflows._deadlock_timeout_seconds is not None:
        workflows._deadlock_timeout_seconds = seconds
    return worker
