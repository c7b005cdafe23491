"""Reviews of a product, and staff moderation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import StrictBool

from api.deps import DbSession, State
from api.problems import problem_responses
from api.routes.catalog import invalidate_catalog
from api.security import CurrentUser, OptionalUser, StaffUser
from models.base import Page, RequestModel
from models.catalog import Review, ReviewCreate, ReviewPublic
from services.catalog.errors import ProductNotFound
from services.catalog.products import ProductService
from services.catalog.reviews import AlreadyReviewed, ReviewNotFound, ReviewService
from services.order_repository import OrderRepository

router = APIRouter(prefix="/products/{key}/reviews", tags=["reviews"])


def _public(review: Review) -> ReviewPublic:
    return ReviewPublic.model_validate(review, from_attributes=True)


def _service(session: DbSession) -> ReviewService:
    return ReviewService(session, OrderRepository(session))


@router.get(
    "",
    summary="List a product's reviews",
    response_model=Page[ReviewPublic],
    responses=problem_responses(ProductNotFound),
)
async def list_reviews(
    key: str,
    session: DbSession,
    caller: OptionalUser,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[ReviewPublic]:
    """Newest first. Hidden reviews are shown to staff only, and so are the reviews of a
    product taken off sale (staff moderate them)."""
    staff = caller is not None and caller.is_staff
    product = await ProductService(session).get(key, include_inactive=staff)
    rows, total = await _service(session).page(
        product.id, include_hidden=staff, page=page, limit=limit
    )
    return Page(items=[_public(r) for r in rows], total=total, page=page, limit=limit)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Review a product",
    response_model=ReviewPublic,
    responses=problem_responses(ProductNotFound, AlreadyReviewed),
)
async def create_review(
    key: str, body: ReviewCreate, caller: CurrentUser, session: DbSession, state: State
) -> ReviewPublic:
    """A rating from 1 to 5 with a title and a body; one review per user and product
    (409 `already_reviewed`). `verifiedPurchase` is true when the user has a confirmed
    order containing the product."""
    product = await ProductService(session).get(key)
    review = await _service(session).create(product.id, caller.user.id, body)
    invalidate_catalog(session, state)
    return _public(review)


class ReviewModeration(RequestModel):
    hidden: StrictBool


@router.patch(
    "/{review_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Hide or show a review (staff)",
    response_class=Response,
    responses=problem_responses(ProductNotFound, ReviewNotFound),
)
async def moderate_review(
    key: str,
    review_id: str,
    body: ReviewModeration,
    caller: StaffUser,
    session: DbSession,
    state: State,
) -> Response:
    """A hidden review leaves the public list and the product's rating summary."""
    product = await ProductService(session).get(key, include_inactive=True)
    await _service(session).set_hidden(product.id, review_id, body.hidden)
    invalidate_catalog(session, state)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
