"""Errors shared by the catalogue's services (one code, one status, wherever it is raised)."""

from __future__ import annotations

from core.errors import NotFound


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "No such product"


class CategoryNotFound(NotFound):
    code = "category_not_found"
    title = "No such category"
