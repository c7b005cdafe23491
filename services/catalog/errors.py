"""Errors shared by the catalogue's services (one code, one status, wherever it is raised)."""

from __future__ import annotations

from core.errors import NotFound, ValidationFailed


class ProductNotFound(NotFound):
    code = "product_not_found"
    title = "No such product"


class CategoryNotFound(ValidationFailed):
    """A category named in a request body (``categoryId``) that does not exist: the
    request is invalid (422), wherever it is raised."""

    code = "category_not_found"
    title = "No such category"
