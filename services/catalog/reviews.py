"""Reviews and the rating aggregates kept on each product.

Aggregates change by atomic increments in the same transaction as the review, so
concurrent reviews never lose an update and the counts always match the visible reviews.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict, NotFound
from models.catalog import Product, Review, ReviewCreate
from services.catalog.products import product_changed


class PurchaseHistory(Protocol):
    """Whether a user has a confirmed order containing a product.

    ``services.order_repository.OrderRepository`` answers it from orders; ``NoPurchases`` is for
    callers that have no orders to consult (the catalog seeder).
    """

    async def has_confirmed_purchase(self, user_id: str, product_id: str) -> bool: ...


class NoPurchases:
    async def has_confirmed_purchase(self, user_id: str, product_id: str) -> bool:
        return False


class ReviewNotFound(NotFound):
    code = "review_not_found"
    title = "No such review"


class AlreadyReviewed(Conflict):
    code = "already_reviewed"
    title = "You have already reviewed this product"


class ReviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, review: Review) -> None:
        try:
            # Inside the savepoint, so a refused row is dropped with it and the
            # surrounding transaction carries on.
            async with self.session.begin_nested():
                self.session.add(review)
                await self.session.flush()
        except IntegrityError as exc:
            raise AlreadyReviewed("you have already reviewed this product") from exc

    async def count_towards(self, product_id: str, rating: int, delta: int) -> None:
        bucket = f"rating_{rating}"
        await self.session.exec(
            update(Product)
            .where(col(Product.id) == product_id)
            .values(
                {
                    "rating_count": Product.rating_count + delta,
                    "rating_sum": Product.rating_sum + delta * rating,
                    bucket: getattr(Product, bucket) + delta,
                }
            )
        )

    async def set_hidden(self, product_id: str, review_id: str, hidden: bool) -> int | None:
        """Flip visibility if it differs; the rating whose count must move, else None."""
        result = await self.session.exec(
            update(Review)
            .where(
                col(Review.id) == review_id,
                col(Review.product_id) == product_id,
                col(Review.hidden).is_(not hidden),
            )
            .values(hidden=hidden)
            .returning(col(Review.rating))
        )
        row = result.first()
        return int(row[0]) if row else None

    async def exists(self, product_id: str, review_id: str) -> bool:
        query = select(Review.id).where(Review.id == review_id, Review.product_id == product_id)
        return (await self.session.exec(query)).first() is not None

    async def page(
        self, product_id: str, *, include_hidden: bool, offset: int, limit: int
    ) -> tuple[list[Review], int]:
        conditions = [col(Review.product_id) == product_id]
        if not include_hidden:
            conditions.append(col(Review.hidden).is_(False))
        rows = await self.session.exec(
            select(Review)
            .where(*conditions)
            .order_by(col(Review.created_at).desc(), col(Review.id).desc())
            .offset(offset)
            .limit(limit)
        )
        total = await self.session.exec(select(func.count()).select_from(Review).where(*conditions))
        return list(rows.all()), int(total.one())


class ReviewService:
    def __init__(
        self, session: AsyncSession, purchases: PurchaseHistory, *, index_events: bool = True
    ) -> None:
        """``index_events`` False: no ``product.changed`` per review, for a bulk load that
        rebuilds the search index at its end (``shop seed``)."""
        self.reviews = ReviewRepository(session)
        self.purchases = purchases
        self.index_events = index_events

    async def _rating_changed(self, product_id: str) -> None:
        if self.index_events:  # the rating sort reads it from the search index
            await product_changed(self.reviews.session, product_id, "rated")

    async def create(self, product_id: str, user_id: str, data: ReviewCreate) -> Review:
        review = Review(
            product_id=product_id,
            user_id=user_id,
            rating=data.rating,
            title=data.title.strip(),
            body=data.body.strip(),
            verified_purchase=await self.purchases.has_confirmed_purchase(user_id, product_id),
        )
        await self.reviews.add(review)
        await self.reviews.count_towards(product_id, data.rating, +1)
        await self._rating_changed(product_id)
        return review

    async def set_hidden(self, product_id: str, review_id: str, hidden: bool) -> None:
        rating = await self.reviews.set_hidden(product_id, review_id, hidden)
        if rating is not None:
            await self.reviews.count_towards(product_id, rating, -1 if hidden else +1)
            await self._rating_changed(product_id)
        elif not await self.reviews.exists(product_id, review_id):
            raise ReviewNotFound(f"no review {review_id} on this product")

    async def page(
        self, product_id: str, *, include_hidden: bool, page: int, limit: int
    ) -> tuple[list[Review], int]:
        return await self.reviews.page(
            product_id, include_hidden=include_hidden, offset=(page - 1) * limit, limit=limit
        )
