"""All SQL of returns: return requests and their lines."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import locked
from core.errors import NotFound
from models.inventory import MovementKind, StockMovement
from models.returns import ReturnLine, ReturnRequest, ReturnStatus


class ReturnNotFound(NotFound):
    code = "return_not_found"
    title = "No such return"


class ReturnRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, return_id: str, *, lock: bool = False) -> ReturnRequest | None:
        query = select(ReturnRequest).where(ReturnRequest.id == return_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def require(self, return_id: str, *, lock: bool = False) -> ReturnRequest:
        found = await self.get(return_id, lock=lock)
        if found is None:
            raise ReturnNotFound(f"no return {return_id}")
        return found

    async def by_refund(self, refund_id: str, *, lock: bool = False) -> ReturnRequest | None:
        """The return whose refund (or settlement) the provider's ``refund_id`` is."""
        query = select(ReturnRequest).where(ReturnRequest.refund_id == refund_id)
        if lock:
            query = locked(query)
        return (await self.session.exec(query)).first()

    async def lines(self, return_ids: Sequence[str]) -> list[ReturnLine]:
        if not return_ids:
            return []
        result = await self.session.exec(
            select(ReturnLine)
            .where(col(ReturnLine.return_id).in_(return_ids))
            .order_by(col(ReturnLine.return_id), col(ReturnLine.id))
        )
        return list(result.all())

    async def for_order(self, order_id: str) -> list[ReturnRequest]:
        """The order's returns, oldest first."""
        result = await self.session.exec(
            select(ReturnRequest)
            .where(ReturnRequest.order_id == order_id)
            .order_by(col(ReturnRequest.created_at), col(ReturnRequest.id))
        )
        return list(result.all())

    async def page(
        self, *, status: ReturnStatus | None, order_id: str | None, offset: int, limit: int
    ) -> tuple[list[ReturnRequest], int]:
        """Newest first."""
        query = select(ReturnRequest)
        count = select(func.count()).select_from(ReturnRequest)
        if status is not None:
            query = query.where(ReturnRequest.status == status)
            count = count.where(col(ReturnRequest.status) == status)
        if order_id is not None:
            query = query.where(ReturnRequest.order_id == order_id)
            count = count.where(col(ReturnRequest.order_id) == order_id)
        rows = await self.session.exec(
            query.order_by(col(ReturnRequest.created_at).desc(), col(ReturnRequest.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = (await self.session.exec(count)).one()
        return list(rows.all()), int(total)

    async def add(self, request: ReturnRequest, lines: Sequence[ReturnLine]) -> None:
        self.session.add(request)
        await self.session.flush()
        self.session.add_all(lines)
        await self.session.flush()

    def stage(self, row: ReturnRequest | ReturnLine) -> None:
        self.session.add(row)

    async def restocked(self, return_line_ids: Sequence[str]) -> set[str]:
        """The return lines whose units already went back to stock (the ledger's
        ``return`` movements carry the return line's id as their reference)."""
        if not return_line_ids:
            return set()
        result = await self.session.exec(
            select(StockMovement.reference).where(
                StockMovement.kind == MovementKind.RETURN,
                col(StockMovement.reference).in_(return_line_ids),
            )
        )
        return {r for r in result.all() if r is not None}
