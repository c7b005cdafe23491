"""Local sandboxes of our providers, mounted outside production: SendGrid and its mailbox.

Paths under ``/_sandbox/sendgrid`` speak SendGrid's v3 wire format, so the real
``sendgrid`` SDK talks to them when SENDGRID_API_KEY is unset.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field, model_validator

from api.deps import DbSession, RedisClient
from api.routes.sandbox_faults import ProviderFaults
from integrations.sandbox.sendgrid import (
    DOWN_STATUS,
    SandboxFaults,
    SandboxMailbox,
    SendGridError,
    api_key_valid,
    down_error,
    new_message_id,
    to_row,
    validate_mail_send,
)
from models.base import CamelModel, utcnow
from models.email import MailboxMessage, SandboxEmail

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

_UNAUTHORIZED = SendGridError("The provided authorization grant is invalid, expired, or revoked")


def _errors(code: int, errors: list[SendGridError]) -> JSONResponse:
    return JSONResponse({"errors": [e.as_dict() for e in errors]}, status_code=code)


@router.post(
    "/sendgrid/v3/mail/send",
    summary="SendGrid sandbox: send mail",
    status_code=202,
    response_class=Response,
)
async def mail_send(
    request: Request,
    session: DbSession,
    redis: RedisClient,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """SendGrid's `POST /v3/mail/send`: 401 for a bad key, 400 with SendGrid-style
    `errors` for a malformed message, otherwise 202 with `X-Message-Id`."""
    if not api_key_valid(authorization):
        return _errors(401, [_UNAUTHORIZED])
    try:
        payload: Any = json.loads(await request.body() or b"null")
    except ValueError:
        return _errors(400, [SendGridError("Bad Request", None, "invalid JSON")])
    problems = validate_mail_send(payload)
    if problems:
        return _errors(400, problems)
    message_id = new_message_id()
    row = to_row(message_id, payload)
    fault = await SandboxFaults(redis).take(row.to_emails)
    if fault is not None and fault.mode == "down":
        return _errors(fault.status, [down_error(fault.status)])
    await SandboxMailbox(session).store(row)
    if fault is not None and fault.mode == "accept_then_fail":
        # The message is kept (the request still commits) but the client is told it
        # failed, as when the provider took a message and the answer was lost.
        return _errors(500, [SendGridError("Internal Server Error (sandbox fault)")])
    return Response(status_code=202, headers={"X-Message-Id": message_id})


@router.get("/sendgrid/v3/messages", summary="SendGrid sandbox: email activity")
async def email_activity(
    session: DbSession,
    redis: RedisClient,
    query: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """SendGrid's Email Activity `GET /v3/messages?query=…`, for `to_email`,
    `from_email`, `subject`, `msg_id` and `unique_args['…']` terms joined by AND."""
    if not api_key_valid(authorization):
        return _errors(401, [_UNAUTHORIZED])
    faults = SandboxFaults(redis)
    current = await faults.current() or {}
    if current.get("mode") == "down":
        down = int(current.get("status") or DOWN_STATUS)
        return _errors(down, [down_error(down)])
    lag = await faults.activity_lag()
    try:
        rows = await SandboxMailbox(session).search(
            query, limit, received_before=utcnow() - lag if lag else None
        )
    except ValueError as exc:
        return _errors(400, [SendGridError(str(exc), "query")])
    return JSONResponse(
        {
            "messages": [
                {
                    "msg_id": row.id,
                    "from_email": row.from_email,
                    "subject": row.subject,
                    "to_email": row.to_emails[0] if row.to_emails else "",
                    "status": "delivered",
                    "opens_count": 0,
                    "clicks_count": 0,
                    "last_event_time": row.received_at.isoformat(),
                }
                for row in rows
            ]
        }
    )


class FaultRequest(ProviderFaults):
    """The other sandboxes' switches (``failureRate``, ``status``, ``lostAnswerRate``,
    ``latencyMs``), or a ``mode`` with the share of calls it affects (``failureRate``; 0,
    the default: every call)."""

    mode: Literal["down", "accept_then_fail"] | None = Field(
        default=None,
        description="`down`: refused 503, nothing stored; `accept_then_fail`: stored, then "
        "500. With `failureRate`, that share of calls; not with `status` or `lostAnswerRate`",
    )
    count: int | None = Field(default=None, ge=1, description="Requests to affect; none: all")
    to: str | None = Field(default=None, max_length=320, description="Only sends to this address")

    @model_validator(mode="after")
    def _one_way(self) -> FaultRequest:
        if self.mode is not None and (self.status is not None or self.lost_answer_rate):
            raise ValueError(
                "mode is not given with status or lostAnswerRate: give one or the other"
            )
        return self


@router.put(
    "/sendgrid/faults",
    summary="SendGrid sandbox: inject a fault",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def set_fault(body: FaultRequest, redis: RedisClient) -> Response:
    """As the other sandboxes: `failureRate` of calls answer `status` (default 500) and
    nothing is stored; `status` alone fails every call (503: SendGrid down, the Email
    Activity search too); `lostAnswerRate` of calls store the message, then answer 500;
    `latencyMs` is added to every call. Or `mode`: `down` (503, nothing stored) or
    `accept_then_fail` (stored, then 500), for every call or `failureRate` of them.
    `count` limits the fault to that many calls, `to` to sends to one address. They apply
    to mail sends and to the Marketing calls alike; a new `PUT` replaces the last."""
    faults = SandboxFaults(redis)
    await faults.set_latency(body.latency_ms)
    if body.mode is not None:
        await faults.set(body.mode, body.count, body.to, body.failure_rate or None)
    else:
        await faults.set_switches(
            failure_rate=body.failure_rate,
            status=body.status,
            lost_answer_rate=body.lost_answer_rate,
            count=body.count,
            to=body.to,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ActivityLagRequest(CamelModel):
    seconds: float = Field(ge=0, le=86_400, description="How long after acceptance a message shows")


@router.put(
    "/sendgrid/activity-lag",
    summary="SendGrid sandbox: make the Email Activity feed lag",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def set_activity_lag(body: ActivityLagRequest, redis: RedisClient) -> Response:
    """As SendGrid's own feed does (by minutes): `GET /v3/messages` shows an accepted
    message only `seconds` after it was accepted. `DELETE /sendgrid/faults` ends it."""
    await SandboxFaults(redis).set_activity_lag(body.seconds)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/sendgrid/faults",
    summary="SendGrid sandbox: clear faults",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def clear_fault(redis: RedisClient) -> Response:
    """Back to normal service (the Email Activity feed's lag too)."""
    await SandboxFaults(redis).clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _message(row: SandboxEmail) -> MailboxMessage:
    return MailboxMessage(
        id=row.id,
        to=row.to_emails,
        from_email=row.from_email,
        subject=row.subject,
        text=row.text,
        html=row.html,
        custom_args=row.custom_args,
        received_at=row.received_at,
    )


@router.get("/mail/messages", summary="Sandbox mailbox (JSON)", response_model=list[MailboxMessage])
async def mailbox_messages(
    session: DbSession,
    to: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MailboxMessage]:
    """Messages the SendGrid sandbox accepted, newest first, optionally for one address."""
    return [_message(r) for r in await SandboxMailbox(session).messages(to=to, limit=limit)]


@router.get("/mail", summary="Sandbox mailbox", response_class=HTMLResponse)
async def mailbox_page(
    session: DbSession, to: Annotated[str | None, Query(max_length=320)] = None
) -> HTMLResponse:
    """A page listing the messages the sandbox accepted, with their text and HTML."""
    rows = await SandboxMailbox(session).messages(to=to, limit=200)
    items = "".join(
        f"<details><summary><b>{html.escape(r.subject)}</b> to "
        f"{html.escape(', '.join(r.to_emails))} "
        f"<small>{r.received_at:%Y-%m-%d %H:%M:%S}</small></summary>"
        f"<pre>{html.escape(r.text or '')}</pre>"
        f'<iframe sandbox srcdoc="{html.escape(r.html or "")}" '
        f'style="width:100%;height:320px;border:1px solid #ccc"></iframe></details>'
        for r in rows
    )
    body = (
        "<!doctype html><meta charset=utf-8><title>Shopweave sandbox mailbox</title>"
        "<body style='font-family:system-ui;max-width:900px;margin:2em auto'>"
        f"<h1>Sandbox mailbox</h1><p>{len(rows)} message(s)"
        f"{' to ' + html.escape(to) if to else ''}, newest first.</p>{items or '<p>Empty.</p>'}"
    )
    return HTMLResponse(body)
