"""Inventory, in three parts, each over its repository (``stock_repository``,
``reservation_repository``, ``purchase_order_repository``; reservations and purchasing
change stock through ``StockRepository`` too):

- ``stock``: levels and their ledger, adjustments, the low-stock alert and auto-reorder;
- ``reservations``: stock held for orders, which can never oversell;
- ``purchasing``: purchase orders and their receipt into stock.
"""

from services.inventory.purchase_order_repository import PurchaseOrderRepository
from services.inventory.purchasing import PurchasingService
from services.inventory.reservation_repository import ReservationRepository
from services.inventory.reservations import (
    OutOfStock,
    ReservationLapsed,
    ReservationService,
    StockInvariantBroken,
)
from services.inventory.stock import InsufficientStock, StockService
from services.inventory.stock_repository import Stock, StockRepository

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
