"""How long a local activity's retry may wait inside the worker: not at all.

A local activity whose retry backoff is at most its ``local_retry_threshold`` is retried
by SDK core inside the worker; a longer backoff is reported to the workflow, which sleeps
on a timer in the history and schedules the next attempt afresh. Core's in-worker retry
keeps every attempt's start-to-close timer running and aborts only the last one
(temporalio/sdk-rust#1454, seen with temporalio 1.35.0). A stale timer that fires while
the worker runs times the current attempt out early; one that fires after the worker
has shut down (a test module's workers, a worker process stopping) finds the channel
gone and panics on a Tokio thread: "receive half not dropped".

Every backoff we use is a second or more, so a threshold of a millisecond sends every
retry through a workflow timer, where each attempt has its own timers and they go with
it. The cost is paid on the failure path only: a marker and a timer in the history per
retry. The threshold must not be zero: zero means unset, which core reads as a minute.
Event deliveries (``workflows.events``) use it too: before, their 2 s threshold kept the 1
and 2 s retries inside the worker, and the panic still showed in full test runs.
"""

from __future__ import annotations

from datetime import timedelta

LOCAL_RETRY_THRESHOLD = timedelta(milliseconds=1)
