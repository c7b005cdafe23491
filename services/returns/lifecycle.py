"""``ReturnWorkflow``'s steps after the goods are back: receive (restock; ``receipt``),
refund (``refund_steps``, with the staff's settlement) and close (here), and the read of
the return as stored (the label's steps are in ``labels``). Each step moves the return
forward only from the status it expects, in one transaction with its event, so a
repeated step changes nothing; the refund is keyed at the provider by ``return:{id}``.
"""

from __future__ import annotations

from core.db import SessionFactory, transaction
from integrations.payments.gateway import PaymentGateway
from models.base import utcnow
from models.returns import ReturnStatus
from services.returns.receipt import ReturnReceipt
from services.returns.refund_steps import ReturnRefunds
from services.returns.repository import ReturnRepository
from workflows.types.returns import StoredReturn


class ReturnSteps(ReturnReceipt, ReturnRefunds):
    def __init__(
        self,
        sessions: SessionFactory,
        gateway: PaymentGateway,
    ) -> None:
        self._sessions = sessions
        self._gateway = gateway

    async def stored(self, return_id: str) -> StoredReturn:
        """The return as its row holds it; changes nothing."""
        async with self._sessions() as session:
            request = await ReturnRepository(session).require(return_id)
        return StoredReturn(
            status=ReturnStatus(request.status),
            approved_at=request.approved_at,
            label_issued=request.label_url is not None,
            ship_by=request.ship_by,
            received_at=request.received_at,
            refund_amount=request.refund_amount,
            refunded_at=request.refunded_at,
            refund_error=request.refund_error,
        )

    async def close(self, return_id: str) -> ReturnStatus:
        async with transaction(self._sessions) as session:
            returns = ReturnRepository(session)
            request = await returns.require(return_id, lock=True)
            if request.status == ReturnStatus.REFUNDED:
                request.status = ReturnStatus.CLOSED
                request.closed_at = request.updated_at = utcnow()
                returns.stage(request)
            return ReturnStatus(request.status)
