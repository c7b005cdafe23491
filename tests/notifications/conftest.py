from __future__ import annotations

from tests.orders.conftest import http, staff

__all__ = ["http", "staff"]
