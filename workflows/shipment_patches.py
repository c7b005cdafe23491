"""The patches ``ShipmentWorkflow`` asks (``workflow.patched``), oldest first, and what
each changed. A run started before a patch keeps the code of its day, so that its
history replays (``tests/workflows/test_replay.py``); the ids are part of every recorded
history and never change.
"""

from __future__ import annotations

# Patch: the stall clock runs from the carrier's latest tracking entry, not from when the
# workflow recorded the update.
STALL_FROM_CARRIER_TIME = "stall-from-carrier-time"
# Patch: the database steps (recording updates, flagging a stall) run as local activities,
# every update that arrived while the workflow was busy is recorded in one step and told
# to the parent once (an exception at once), and a search attribute is upserted only when
# its value changes. Parcels started before it keep one remote activity per update.
LOCAL_TRACKING_STEPS = "local-tracking-steps"
# Patch: a carrier update handled before ``run`` (a continued run's first workflow task,
# or signal-with-start) is checked against the event ids carried over, as any later one
# is. The handler runs before ``run`` restores them, so a webhook redelivered just after
# continue-as-new was recorded again (a step for nothing; the history and the status
# caught the repeat). Parcels started before it keep what their first task did.
EARLY_UPDATES_DEDUPED = "early-carrier-updates-deduped"
# Patch: cancelled, a parcel whose label the carrier would not void (scanned: the parcel
# is on its way; the compensation answers False) is kept tracked and the parent told (an
# exception: the fulfilment goes on hold for staff). Before, the run ended there with
# the parcel labelled and nobody following it (and, before the compensation stopped
# retrying a ``label_in_use`` refusal, the refund was tried forever).
CANCEL_REFUSED_KEEPS_TRACKING = "cancel-refused-keeps-tracking"
# Patch: the refusal is carried into the parcel's next run (continue-as-new), which
# answers a cancel as the first was answered (the parent told, the parcel still tracked,
# the carrier not asked again). Temporal delivers one cancel per run (a second request
# of the same run changes nothing): a second cancel reaches a kept parcel once its run
# has continued as new, and that run, knowing nothing of the refusal, ended there for a
# parcel on its way (no label left to refund), with nobody tracking it.
REPEATED_CANCEL_REFUSED = "repeated-cancel-refused"
# Patch: cancelled once the parcel is moving (in transit, out for delivery, an
# exception...), it is refused as a cancel the carrier refused is (the parent told, the
# parcel still tracked, the refusal carried over); the carrier is not asked: a moving
# parcel has no label to void. Before, the run ended there, the parcel on its way with
# nobody tracking it (no delivery recorded, no SLA, the order never delivered).
MOVING_PARCEL_CANCEL_REFUSED = "moving-parcel-cancel-refused"
# Patch: carrier updates whose recording a cancel interrupted go back to the pending ones,
# recorded once the cancel is answered if tracking goes on. Before, they were lost: the
# SDK runs a signal before a cancel of the same activation, so an update and a cancel
# arriving together started the update's step and then cancelled it, and a parcel whose
# cancel was refused waited for news it had already been sent (its delivery, at times).
CANCEL_KEEPS_UNRECORDED_UPDATES = "cancel-keeps-unrecorded-updates"
# Patch: the stall clock's patch is asked in the run's first workflow task, not when the
# first carrier update's local step answers. A local step's result can be recorded one
# workflow task before what the workflow did with it (a query answered while the step
# ends: the SDK core reports the step's marker with the answer and asks for a new task),
# and a replay hands the result back in the marker's task, before it knows of the next
# task's patch marker: ``patched`` answered False there and the replay failed on the
# marker ("Non-deprecated patch marker ... no corresponding change command"), a query of
# the closed parcel or a worker taking it up again after its cache dropped it. Parcels
# started before it ask where they did.
PATCHES_DECIDED_AT_START = "shipment-patches-decided-at-start"
# Patch: a ``retry_label`` naming a correction acted on already is dropped (a label is
# bought once per correction; ``RetryLabel``). Asked in the run's first workflow task, so
# that a run every worker sees alike: a worker of the release before takes the signal with
# its argument dropped (temporalio calls a handler that takes no parameter without the
# payloads) and acts on a repeat, and a run it served must replay the same on this code
# (it did not: the repeat dropped here, the label bought in the history, the replay
# failed). Parcels started before it act on every ``retry_label``, as they did.
RETRY_LABEL_ONCE_PER_CORRECTION = "retry-label-once-per-correction"
