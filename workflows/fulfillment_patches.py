"""The patches ``FulfillmentWorkflow`` asks (``workflow.patched``), oldest first, and
what each changed. A run started before a patch keeps the code of its day, so that its
history replays (``tests/workflows/test_replay.py``); the ids are part of every recorded
history and never change.
"""

from __future__ import annotations

# Patch: the fulfilment's own database steps (open, create a shipment, hold, release,
# cancel) run as local activities, a search attribute is upserted only when its value
# changes, and a parcel's workflow starts with its search attributes set. Fulfilments
# started before it keep their remote steps and upserts.
LOCAL_FULFILLMENT_STEPS = "local-fulfillment-steps"
# Since this patch an Update waits for the fulfilment order to be open before it takes
# the lock. Before it, an Update that came with the start (in the first workflow task)
# ran first, took the lock and waited for the opening, which ``run`` makes holding the
# lock: neither ever moved again. Fulfilments started before it keep the old order
# (their Updates came after the opening, or they are stuck and are terminated).
UPDATES_WAIT_FOR_OPEN = "updates-wait-for-open"
# Since this patch a parcel's id comes from its Update's id (and the run's start), not
# from ``workflow.now()``. A workflow task tried again (its worker died after
# ``fulfillment.create_shipment`` committed, before the task's completion recorded the
# local step) runs the handler again at a later ``now()``: the step named another
# parcel, and made it too (the same units twice while some were left) or was refused
# (``quantity_exceeds_unassigned``), the first parcel left with no workflow to label it.
PARCEL_ID_FROM_UPDATE = "parcel-id-from-update"
# Since this patch an accepted cancel's own step is retried until it answers, as the
# undoing after it is. Before, it had a staff step's five attempts: an attempt that
# committed (its answer lost: the worker or the database went away) followed by four
# that failed answered the Update "try again", the rows cancelled while nothing gave the
# stock back or refunded the payment, and the workflow, not knowing, waited for staff to
# cancel again (the API had often answered 202, "under way", already). The step is one
# idempotent transaction, so trying it until it answers either cancels (and the undoing
# follows) or refuses with the business reason (``fulfillment_has_labels``).
CANCEL_UNTIL_ANSWERED = "cancel-until-answered"
# A cancel from Temporal (the UI, the CLI) ends ``run`` where it waits; the workflow then
# closed with staff's cancel Update still undoing the order (stock back, the payment not
# yet refunded, the order not closed), the rest never run. Since this patch ``run`` waits
# for the Updates in flight to finish before it ends cancelled.
HANDLERS_FINISH_WHEN_CANCELLED = "handlers-finish-when-cancelled"
# Since this patch PARCEL_ID_FROM_UPDATE, CANCEL_UNTIL_ANSWERED and
# HANDLERS_FINISH_WHEN_CANCELLED are not asked: it came after them, so a run that has it
# takes their new code. The first two were asked when an Update's turn came, which is
# often when a local step ended (the opening, another Update's); a local step's result
# that comes while the worker answers a query is recorded one workflow task before what
# the workflow does with it, and a replay (a query of the closed fulfilment, a worker
# taking it up after its cache dropped it) asked the patch before it knew of its marker,
# answered False and failed ("Non-deprecated patch marker encountered"). This one is
# asked in the first task.
PATCHES_DECIDED_AT_START = "fulfillment-patches-decided-at-start"
# Since this patch a run reset by an operator (``temporal workflow reset``, the UI's
# Reset) goes on from what the database holds, not from what its history kept up to the
# reset point. Before it, the reset run named a parcel again from its Update with the
# run's new start time, so an Update applied again made a second parcel of units still
# unassigned (a second label bought) or was refused (``quantity_exceeds_unassigned``),
# and, either way or when the Update was not applied again, the parcels made after the
# reset point were unknown to the run: their news dropped, the fulfilment never
# delivered, its workflow never ending. Now a parcel's id comes from the workflow's own
# start (kept by a reset), its workflow is started once (a reset run finds it running or
# ended and leaves it be), and the run reads its fulfilment again (``fulfillment.open``,
# which answers the stored hold and parcels) when it opens it and when Temporal tells it
# it was reset (its randomness seed changes there), taking the parcels and the hold as
# stored, and finishing an undo whose cancel it no longer knows of. A parcel's exception
# holds the fulfilment under a key counting the parcel's exceptions, so the same one told
# again to a reset run (staff released its hold since) holds it (and emails) no second time.
RESET_READS_THE_DATABASE = "fulfillment-reset-reads-the-database"
