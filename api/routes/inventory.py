"""Stock (staff): levels and ledger, adjustments, low stock, purchase orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import DbSession, State
from api.problems import problem_responses
from api.routes.catalog import invalidate_catalog
from api.security import StaffUser
from core.errors import Conflict, NotFound
from models.base import Page
from models.inventory import (
    InventoryPublic,
    MovementPublic,
    PurchaseOrder,
    PurchaseOrderPublic,
    PurchaseOrderStatus,
    StockAdjustment,
    StockPublic,
)
from services.catalog.errors import ProductNotFound
from services.inventory import InsufficientStock, PurchasingService, Stock, StockService

router = APIRouter(tags=["inventory"])


def _stock(stock: Stock) -> StockPublic:
    return StockPublic(
        product_id=stock.product_id,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        available=stock.available,
        low_stock_threshold=stock.threshold,
    )


def _po(po: PurchaseOrder) -> PurchaseOrderPublic:
    return PurchaseOrderPublic.model_validate(po, from_attributes=True)


@router.get(
    "/inventory/low-stock",
    summary="Products low on stock (staff)",
    response_model=Page[StockPublic],
    responses=problem_responses(),
)
async def low_stock(
    caller: StaffUser,
    session: DbSession,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[StockPublic]:
    """Products whose available stock is below their `lowStockThreshold`, lowest first."""
    rows, total = await StockService(session).low(offset=(page - 1) * limit, limit=limit)
    return Page(items=[_stock(s) for s in rows], total=total, page=page, limit=limit)


@router.get(
    "/inventory/{product_id}",
    summary="Stock and ledger of a product (staff)",
    response_model=InventoryPublic,
    responses=problem_responses(ProductNotFound),
)
async def inventory(
    product_id: str,
    caller: StaffUser,
    session: DbSession,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> InventoryPublic:
    """`onHand`, `reserved`, `available` and the ledger (`movements`), newest first. The
    ledger always adds up to the stock numbers."""
    service = StockService(session)
    stock = await service.get(product_id)
    movements, total = await service.movements(product_id, offset=(page - 1) * limit, limit=limit)
    return InventoryPublic(
        **_stock(stock).model_dump(),
        movements=[MovementPublic.model_validate(m, from_attributes=True) for m in movements],
        total=total,
        page=page,
        limit=limit,
    )


@router.post(
    "/inventory/{product_id}/adjust",
    summary="Adjust stock (staff)",
    response_model=StockPublic,
    responses=problem_responses(ProductNotFound, InsufficientStock),
)
async def adjust(
    product_id: str,
    body: StockAdjustment,
    caller: StaffUser,
    session: DbSession,
    state: State,
) -> StockPublic:
    """Add (`delta` > 0) or remove stock, with a `reason` for the ledger. A removal that
    would leave less than is reserved, or negative stock, answers 409
    `insufficient_stock` and writes nothing."""
    stock = await StockService(session).adjust(
        product_id, body.delta, body.reason, reference=caller.user.id
    )
    invalidate_catalog(session, state)
    return _stock(stock)


@router.get(
    "/purchase-orders",
    summary="Purchase orders (staff)",
    response_model=Page[PurchaseOrderPublic],
    responses=problem_responses(),
)
async def purchase_orders(
    caller: StaffUser,
    session: DbSession,
    status: PurchaseOrderStatus | None = None,
    product_id: Annotated[str | None, Query(alias="productId", max_length=40)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[PurchaseOrderPublic]:
    """Newest first, paginated like every list (`items`, `total`, `page`, `limit`),
    optionally one `status` or one `productId`; auto-reorder opens one when a product
    runs low."""
    rows, total = await PurchasingService(session).purchase_orders(
        status, product_id=product_id, offset=(page - 1) * limit, limit=limit
    )
    return Page(items=[_po(po) for po in rows], total=total, page=page, limit=limit)


@router.post(
    "/purchase-orders/{purchase_order_id}/receive",
    summary="Receive a purchase order (staff)",
    response_model=PurchaseOrderPublic,
    responses=problem_responses(
        (NotFound, "purchase_order_not_found"), (Conflict, "purchase_order_not_open")
    ),
)
async def receive(
    purchase_order_id: str, caller: StaffUser, session: DbSession, state: State
) -> PurchaseOrderPublic:
    """Adds the ordered quantity to stock as a receipt; a second receive answers 409
    `purchase_order_not_open`. If the product is still below its `lowStockThreshold`,
    `inventory.low_stock` goes again (with auto-reorder, the next purchase order)."""
    po = await PurchasingService(session).receive(purchase_order_id)
    invalidate_catalog(session, state)
    return _po(po)
