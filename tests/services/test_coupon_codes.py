"""A coupon's code is unique, also between two creates racing past the look-up."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Conflict
from models.pricing import CouponCreate
from services.catalog.coupons import CouponRepository, CouponService


def _coupon(code: str) -> CouponCreate:
    return CouponCreate.model_validate({"code": code, "kind": "percentage", "percent": "10"})


async def test_a_code_taken_after_the_look_up_is_409_not_the_index_error(
    db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six staff clicks at once: each create looked the code up before any had committed,
    so the unique index refused all but the first, and they answered 500. The look-up
    missing it, as it did for them, the index's refusal is 409 coupon_code_taken."""
    code = f"RACE{uuid4().hex[:8].upper()}"
    service = CouponService(db_session)
    first = await service.create(_coupon(code))

    async def not_yet_committed(self: CouponRepository, code: str, *, lock: bool = False) -> None:
        return None

    monkeypatch.setattr(CouponRepository, "by_code", not_yet_committed)
    with pytest.raises(Conflict) as taken:
        await service.create(_coupon(code.lower()))
    assert taken.value.code == "coupon_code_taken"
    assert taken.value.extra == {"field": "code"}
    # The session goes on: only the second insert was undone.
    monkeypatch.undo()
    assert (await service.get(code)).id == first.id
