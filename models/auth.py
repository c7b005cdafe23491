"""Refresh tokens: opaque, stored hashed, rotated, grouped in families (one per login)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field as PydanticField
from pydantic import model_validator
from sqlalchemy import Column, DateTime, ForeignKey, String
from sqlmodel import Field, SQLModel

from core.ids import IdPrefix, new_id
from models.base import CamelModel, RequestModel, created_at_field
from models.users import UserPublic


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    id: str = Field(default_factory=lambda: new_id(IdPrefix.TOKEN), primary_key=True)
    user_id: str = Field(
        sa_column=Column(
            String, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    # The family is the login session: every rotation stays in it, and reuse of a
    # rotated token revokes all of it. Access tokens carry it as ``sid``.
    family_id: str = Field(max_length=40, index=True)
    # SHA-256 of the opaque token; the token itself is never stored.
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    rotated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    user_agent: str | None = Field(default=None, max_length=500)
    ip: str | None = Field(default=None, max_length=64)


class LoginRequest(RequestModel):
    email: str = PydanticField(min_length=1, max_length=320, examples=["ada@example.com"])
    password: str = PydanticField(min_length=1, max_length=256)
    anonymous_id: str | None = PydanticField(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="The visitor's anonymous id (analytics; or `X-Anonymous-Id`): its "
        "events count for this user from now on, earlier ones included",
        examples=["anon_5f1c2a"],
    )


class RefreshRequest(RequestModel):
    refresh_token: str = PydanticField(min_length=1, max_length=256)


class LogoutRequest(RequestModel):
    refresh_token: str | None = PydanticField(default=None, max_length=256)


class TokenPair(CamelModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = PydanticField(description="Seconds until the access token expires")
    refresh_token: str
    refresh_expires_in: int
    user: UserPublic


class LoginUnlock(RequestModel):
    email: str | None = PydanticField(default=None, max_length=320, examples=["ada@example.com"])
    ip: str | None = PydanticField(default=None, max_length=64, examples=["203.0.113.7"])

    @model_validator(mode="after")
    def _something(self) -> LoginUnlock:
        if not self.email and not self.ip:
            raise ValueError("give an email, an ip, or both")
        return self


class LoginUnlocked(CamelModel):
    email: str | None
    ip: str | None
    unlocked: bool
