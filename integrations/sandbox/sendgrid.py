"""The SendGrid sandbox: the parts of SendGrid's v3 API we use, checked like SendGrid does.

``POST /v3/mail/send`` validates and stores the message (the local mailbox) and answers
202 with an ``X-Message-Id``; ``GET /v3/messages`` is the Email Activity query we use to
learn whether a message was already accepted. Faults can be injected for tests and
demos: ``down`` (503, or the status set, nothing stored) and ``accept_then_fail``
(stored, then 500, as when the provider took the message but its answer was lost), set
with the other sandboxes' switches (``failureRate``, ``status``, ``lostAnswerRate``,
``latencyMs``) or by ``mode``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.email import SandboxEmail

FAULT_KEY = "sandbox:sendgrid:fault"
# Seconds an accepted message stays out of the Email Activity search (the real feed lags).
ACTIVITY_LAG_KEY = "sandbox:sendgrid:activity_lag"
# Milliseconds added to every send and Marketing call.
LATENCY_KEY = "sandbox:sendgrid:latency_ms"
FaultMode = Literal["down", "accept_then_fail"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_QUERY_TERM = re.compile(
    r"""^\s*(?:(?P<field>to_email|from_email|subject|msg_id)|unique_args\['(?P<arg>[^']+)'\])"""
    r"""\s*=\s*"(?P<value>[^"]*)"\s*$"""
)


@dataclass(frozen=True)
class SendGridError:
    message: str
    field: str | None = None
    help: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"message": self.message, "field": self.field, "help": self.help}


def validate_mail_send(payload: Any) -> list[SendGridError]:
    """The checks SendGrid makes on ``/v3/mail/send`` that a wrong client would trip."""
    if not isinstance(payload, dict):
        return [SendGridError("Bad Request", None, "the request body must be a JSON object")]
    errors: list[SendGridError] = []
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            SendGridError(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    for i, item in enumerate(personalizations):
        to = item.get("to") if isinstance(item, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                SendGridError(
                    "The to array is required for all personalization objects, and must "
                    "have at least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for j, recipient in enumerate(to):
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not isinstance(email, str) or not _EMAIL.match(email):
                errors.append(
                    SendGridError(
                        "Does not contain a valid address.",
                        f"personalizations.{i}.to.{j}.email",
                    )
                )
    sender = payload.get("from")
    if not isinstance(sender, dict) or not _EMAIL.match(str(sender.get("email", ""))):
        errors.append(SendGridError("The from object must be provided for every email.", "from"))
    has_template = bool(payload.get("template_id"))
    subject_everywhere = bool(payload.get("subject")) or all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not has_template and not subject_everywhere:
        errors.append(
            SendGridError(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = payload.get("content")
    if not has_template:
        valid = (
            isinstance(content, list)
            and content
            and all(
                isinstance(c, dict)
                and c.get("type")
                and isinstance(c.get("value"), str)
                and c["value"]
                for c in content
            )
        )
        if not valid:
            errors.append(
                SendGridError(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block. We typically suggest "
                    "both text/plain and text/html blocks are included, but only one block is "
                    "required.",
                    "content",
                )
            )
    return errors


def api_key_valid(authorization: str | None) -> bool:
    """SendGrid keys look like ``SG.<id>.<secret>``; anything else is refused with 401."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return authorization.removeprefix("Bearer ").startswith("SG.")


def new_message_id() -> str:
    return secrets.token_urlsafe(16)


def to_row(message_id: str, payload: dict[str, Any]) -> SandboxEmail:
    recipients = [
        str(r["email"]).lower() for p in payload["personalizations"] for r in p.get("to", [])
    ]
    contents = {c["type"]: c["value"] for c in payload.get("content", [])}
    subject = payload.get("subject") or payload["personalizations"][0].get("subject", "")
    custom_args: dict[str, Any] = dict(payload.get("custom_args") or {})
    for p in payload["personalizations"]:
        custom_args.update(p.get("custom_args") or {})
    return SandboxEmail(
        id=message_id,
        to_emails=recipients,
        from_email=str(payload["from"]["email"]),
        subject=str(subject),
        text=contents.get("text/plain"),
        html=contents.get("text/html"),
        custom_args=custom_args,
        payload=payload,
    )


class SandboxMailbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store(self, row: SandboxEmail) -> None:
        self.session.add(row)
        await self.session.flush()

    async def messages(self, *, to: str | None, limit: int) -> list[SandboxEmail]:
        query = select(SandboxEmail)
        if to:
            query = query.where(
                col(SandboxEmail.to_emails).contains(func.jsonb_build_array(to.strip().lower()))
            )
        result = await self.session.exec(
            query.order_by(col(SandboxEmail.received_at).desc()).limit(limit)
        )
        return list(result.all())

    async def search(
        self, query: str, limit: int, *, received_before: datetime | None = None
    ) -> list[SandboxEmail]:
        """The Email Activity query language, for the terms we use, joined by AND;
        ``received_before``: only messages accepted before then (the feed's lag)."""
        statement = select(SandboxEmail)
        if received_before is not None:
            statement = statement.where(col(SandboxEmail.received_at) < received_before)
        for term in re.split(r"\s+AND\s+", query.strip()) if query.strip() else []:
            match = _QUERY_TERM.match(term)
            if match is None:
                raise ValueError(f"unsupported query term: {term}")
            value = match["value"]
            if match["arg"]:
                statement = statement.where(SandboxEmail.custom_args[match["arg"]].astext == value)
            elif match["field"] == "to_email":
                statement = statement.where(
                    col(SandboxEmail.to_emails).contains(func.jsonb_build_array(value.lower()))
                )
            elif match["field"] == "from_email":
                statement = statement.where(SandboxEmail.from_email == value)
            elif match["field"] == "subject":
                statement = statement.where(SandboxEmail.subject == value)
            else:
                statement = statement.where(SandboxEmail.id == value)
        result = await self.session.exec(
            statement.order_by(col(SandboxEmail.received_at).desc()).limit(limit)
        )
        return list(result.all())


@dataclass(frozen=True)
class Fault:
    """What one call meets: ``down`` (refused with ``status``, nothing kept) or
    ``accept_then_fail`` (kept, then answered 500)."""

    mode: FaultMode
    status: int = 500


DOWN_STATUS = 503


def down_error(status: int) -> SendGridError:
    """What a call refused by the fault switch answers (``down``)."""
    return SendGridError(f"{HTTPStatus(status).phrase} (sandbox fault: down)")


class SandboxFaults:
    """Injected failures, shared by every API process through Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def set(
        self,
        mode: FaultMode,
        count: int | None,
        to: str | None = None,
        rate: float | None = None,
    ) -> None:
        """``to``: only messages to that address are affected (others pass normally);
        ``rate``: each request is affected with that probability (0 < rate <= 1)."""
        fault = {"mode": mode, "remaining": count, "to": to.lower() if to else None, "rate": rate}
        await self.redis.set(FAULT_KEY, json.dumps(fault))

    async def set_switches(
        self,
        *,
        failure_rate: float,
        status: int | None,
        lost_answer_rate: float,
        count: int | None = None,
        to: str | None = None,
    ) -> None:
        """The other sandboxes' switches: ``failure_rate`` of calls answer ``status``
        (500 if unset), nothing kept; ``status`` alone fails every call;
        ``lost_answer_rate`` of calls are kept, then answer 500. ``count`` and ``to``
        narrow them as with ``set``; none of them set, no fault."""
        every = status is not None and not failure_rate and not lost_answer_rate
        if not (every or failure_rate or lost_answer_rate):
            await self.redis.delete(FAULT_KEY)
            return
        fault = {
            "mode": "down" if every else None,
            "status": status,
            "failure_rate": failure_rate,
            "remaining": count,
            "to": to.lower() if to else None,
            # The share of calls affected: refused or kept then failed (None: every one).
            "rate": None if every else min(1.0, failure_rate + lost_answer_rate),
        }
        await self.redis.set(FAULT_KEY, json.dumps(fault))

    async def set_latency(self, milliseconds: int) -> None:
        """Added to every send and Marketing call (0: none)."""
        if milliseconds:
            await self.redis.set(LATENCY_KEY, str(milliseconds))
        else:
            await self.redis.delete(LATENCY_KEY)

    async def clear(self) -> None:
        await self.redis.delete(FAULT_KEY, ACTIVITY_LAG_KEY, LATENCY_KEY)

    async def set_activity_lag(self, seconds: float) -> None:
        """Accepted messages show in the Email Activity search only ``seconds`` later."""
        await self.redis.set(ACTIVITY_LAG_KEY, str(seconds))

    async def activity_lag(self) -> timedelta:
        raw = await self.redis.get(ACTIVITY_LAG_KEY)
        return timedelta(seconds=float(raw)) if raw else timedelta(0)

    async def current(self) -> dict[str, Any] | None:
        raw = await self.redis.get(FAULT_KEY)
        return json.loads(raw) if raw else None

    async def take(self, recipients: list[str]) -> Fault | None:
        """The fault to apply to a send to ``recipients``, counting it down atomically,
        after the latency set."""
        latency = await self.redis.get(LATENCY_KEY)
        if latency:
            await asyncio.sleep(int(latency) / 1000)
        script = """
        local raw = redis.call('GET', KEYS[1])
        if not raw then return nil end
        local fault = cjson.decode(raw)
        if fault.to ~= cjson.null and fault.to ~= nil then
            local hit = false
            for i = 2, #ARGV do if ARGV[i] == fault.to then hit = true end end
            if not hit then return nil end
        end
        if fault.rate ~= cjson.null and fault.rate ~= nil then
            if tonumber(ARGV[1]) >= fault.rate then return nil end
        end
        if fault.remaining ~= cjson.null and fault.remaining ~= nil then
            if fault.remaining <= 0 then redis.call('DEL', KEYS[1]); return nil end
            fault.remaining = fault.remaining - 1
            if fault.remaining == 0 then redis.call('DEL', KEYS[1])
            else redis.call('SET', KEYS[1], cjson.encode(fault)) end
        end
        return raw
        """
        # The dice are thrown here: Lua's math.random repeats itself in Redis 6 scripts.
        roll = random.random()
        raw = await self.redis.eval(
            script, 1, FAULT_KEY, str(roll), *[r.lower() for r in recipients]
        )
        if raw is None:
            return None
        fault: dict[str, Any] = json.loads(raw)
        mode: FaultMode | None = fault.get("mode")
        status: int | None = fault.get("status")
        if mode == "down":
            return Fault("down", status or DOWN_STATUS)
        if mode == "accept_then_fail":
            return Fault("accept_then_fail")
        # The switches: the roll below failure_rate refuses, the rest of the share affected
        # is kept then answered 500.
        if roll < float(fault.get("failure_rate") or 0):
            return Fault("down", status or 500)
        return Fault("accept_then_fail")
