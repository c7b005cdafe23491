"""The patches ``ReturnWorkflow`` asks (``workflow.patched``), oldest first, and what each
changed. A run started before a patch keeps the code of its day, so that its history
replays (``tests/workflows/test_replay.py``); the ids are part of every recorded history
and never change.
"""

from __future__ import annotations

# A refund Stripe refuses (the money went to another refund after receipt) ends the
# return ``received``, failed for staff, instead of failing the workflow bare: the
# ``receive`` Update says why (older workers never saw that refusal).
REFUND_REFUSED = "return-refund-refused"
# An approve Update that comes with the start (in the first workflow task) runs before
# ``run``: its validator accepts it (the return is requested, undecided) and its handler
# keeps staff's approval. ``run`` then replaced it with the automatic one for an
# auto-approved reason: the label was issued as auto-approved, staff's name lost. Since
# this patch an approval already given stands.
APPROVAL_BEFORE_RUN_KEPT = "return-approval-before-run-kept"
# The ship-by time passed, but the cancel could not void the label: the carrier has
# scanned it (``label_in_use``), the goods are on their way. Before this patch the
# workflow failed there, the return left ``approved`` with no workflow to take the
# goods' receipt or refund them; since, it waits for the receipt.
LATE_PARCEL_AWAITED = "return-late-parcel-awaited"
# The ship-by time passed and the cancel answered that the return had moved on (received,
# refunded, closed, declined): the run never saw it, as a run reset (``temporal workflow
# reset``, the UI's Reset) to before staff's receipt Update, the Update not applied again.
# Before this patch the workflow ended ``cancelled`` all the same, its status wrong and a
# return received but not yet refunded (the refund retrying when the operator reset) never
# refunded; since, it goes on from the stored status (refund, close; every step answers a
# repeat as the first did, the refund under the return's key: once).
DEADLINE_TAKES_STORED_STATUS = "return-deadline-takes-stored-status"
# A run reset by an operator (``temporal workflow reset``, the UI's Reset) keeps its
# history up to the reset point and is sent again the Updates that came since, unless
# they are excluded. Before this patch it did not read the return again: reset to before
# staff's approval, Updates not sent again, it waited for a decision the row already had
# and refused staff's receipt (``return_not_approved``); reset to before the receipt, it
# waited until the ship-by time (see DEADLINE_TAKES_STORED_STATUS). Since, the run reads
# the return (``returns.read``, which changes nothing) at its start (a run reset to its
# first task) and where it waits when Temporal tells it it was reset (its randomness seed
# changes there), and goes on from the stored status: approved, it awaits the receipt
# until the stored ship-by time; received, it refunds the amount fixed at receipt (once:
# the return's key) and closes; refunded, it closes; closed, declined or cancelled, it
# ends so. No step is done again that the row says was done: no second label, receipt,
# refund or email.
RESET_READS_THE_RETURN = "return-reset-reads-the-return"
