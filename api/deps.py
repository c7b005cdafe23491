"""Dependency aliases endpoints take (Polar style: ``Annotated`` names, no wiring in routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from api.state import AppState
from core.settings import Settings


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.shop
    return state


State = Annotated[AppState, Depends(get_state)]


def get_settings(state: State) -> Settings:
    return state.settings


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    """One session a request; it commits once, at the boundary, when the endpoint returns."""
    async with state.sessions() as session:
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            await session.rollback()
            raise


def get_redis(state: State) -> Redis:
    return state.redis


AppSettings = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[AsyncSession, Depends(get_session)]
RedisClient = Annotated[Redis, Depends(get_redis)]
