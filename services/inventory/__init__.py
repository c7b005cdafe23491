"""Inventory, in three parts over one set of repositories (``repositories``):

- ``stock``: levels and their ledger, adjustments, the low-stock alert and auto-reorder;
- ``reservations``: stock held for orders, which can never oversell;
- ``purchasing``: purchase orders and their receipt into stock.
"""

from services.inventory.purchasing import PurchasingService
from services.inventory.repositories import (
    PurchaseOrderRepository,
    ReservationRepository,
    Stock,
    StockRepository,
)
from services.inventory.reservations import (
    OutOfStock,
    ReservationLapsed,
    ReservationService,
    StockInvariantBroken,
)
from services.inventory.stock import InsufficientStock, StockService

__all__ = [
    "InsufficientStock",
    "OutOfStock",
    "PurchaseOrderRepository",
    "PurchasingService",
    "ReservationLapsed",
    "ReservationRepository",
    "ReservationService",
    "Stock",
    "StockInvariantBroken",
    "StockRepository",
    "StockService",
]
