"""An email whose send's answer was lost is sent again only once the provider's activity
feed would show the first attempt: the real SendGrid's feed lags by minutes, so a retry
that asked it too early found nothing and sent a second copy. Against the sandbox told
to lag as SendGrid does (``PUT /_sandbox/sendgrid/activity-lag``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from core.db import create_session_factory
from core.settings import Settings
from integrations.email.factory import build_sender
from integrations.email.sender import EmailProviderUnavailable
from integrations.email.templates import EmailTemplates
from models.email import EmailMessage, EmailStatus
from services.email import EmailOutcomePending, EmailService
from temporal.errors import to_application_error
from tests.events.conftest import MailApi
from tests.factories import unique_email

LAG = timedelta(minutes=5)


def _emails(engine: AsyncEngine, mail_api: MailApi, lag: timedelta) -> EmailService:
    settings = mail_api.settings
    return EmailService(
        create_session_factory(engine),
        build_sender(settings),
        EmailTemplates(),
        settings.email_from,
        activity_lag=lag,
    )


async def _ledger(engine: AsyncEngine, key: str) -> EmailMessage:
    async with create_session_factory(engine)() as session:
        found = await session.exec(select(EmailMessage).where(EmailMessage.idempotency_key == key))
        return found.one()


async def _lost_answer_then_lagging_feed(mail_api: MailApi, to: str) -> None:
    """The next send to ``to`` is kept and answered 500; the feed shows it 5 min late."""
    fault = {"mode": "accept_then_fail", "count": 1, "to": to}
    assert (await mail_api.http.put("/_sandbox/sendgrid/faults", json=fault)).status_code == 204
    lag = {"seconds": LAG.total_seconds()}
    response = await mail_api.http.put("/_sandbox/sendgrid/activity-lag", json=lag)
    assert response.status_code == 204


async def _send(emails: EmailService, key: str, to: str) -> None:
    await emails.deliver(key=key, template="welcome", to=to, context={"name": "Ada", "email": to})


async def test_a_retry_before_the_feed_shows_the_lost_send_waits_instead_of_sending_again(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    emails, to, key = (
        _emails(engine, mail_api, LAG),
        unique_email("lag"),
        f"lag:{unique_email('k')}",
    )
    await _lost_answer_then_lagging_feed(mail_api, to)
    with pytest.raises(EmailProviderUnavailable):
        await _send(emails, key, to)
    first = await _ledger(engine, key)
    assert first.status == EmailStatus.SENDING
    assert first.attempted_at is not None
    # Retried at once and again: too soon for the feed to show the message, so it is not
    # asked and nothing is sent; the attempt fails retryably, the first one's time kept.
    for _ in range(2):
        with pytest.raises(EmailOutcomePending) as pending:
            await _send(emails, key, to)
        assert pending.value.retryable
        # As an activity's failure: retried when the feed would show it, not sooner.
        failure = to_application_error(pending.value)
        assert not failure.non_retryable
        assert failure.next_retry_delay is not None
        assert timedelta(minutes=4) < failure.next_retry_delay <= LAG
    assert len(await mail_api.mailbox(to)) == 1
    assert (await _ledger(engine, key)).attempted_at == first.attempted_at
    # Five minutes on (a service whose lag has passed), the feed showing the message: the
    # retry finds the first send and sends nothing.
    assert (await mail_api.http.delete("/_sandbox/sendgrid/faults")).status_code == 204
    await _send(_emails(engine, mail_api, timedelta(0)), key, to)
    [message] = await mail_api.mailbox(to)
    done = await _ledger(engine, key)
    assert (done.status, done.provider_message_id) == (EmailStatus.SENT, message["id"])


async def test_a_send_the_provider_never_took_goes_again_once_the_feed_would_show_it(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    """The first attempt's outcome unknown, but it never reached the provider (the
    sandbox down): once the lag has passed and the feed shows nothing, it is sent."""
    to, key = unique_email("lagdown"), f"lag:{unique_email('k')}"
    down = {"mode": "down", "count": 1, "to": to}
    assert (await mail_api.http.put("/_sandbox/sendgrid/faults", json=down)).status_code == 204
    with pytest.raises(EmailProviderUnavailable):
        await _send(_emails(engine, mail_api, LAG), key, to)
    with pytest.raises(EmailOutcomePending):
        await _send(_emails(engine, mail_api, LAG), key, to)
    # A service whose lag has passed since the attempt (as one five minutes later).
    await _send(_emails(engine, mail_api, timedelta(0)), key, to)
    assert len(await mail_api.mailbox(to)) == 1
    assert (await _ledger(engine, key)).status == EmailStatus.SENT


async def test_without_a_lag_a_lost_answer_is_looked_up_and_not_sent_twice(
    engine: AsyncEngine, mail_api: MailApi
) -> None:
    """The sandbox's own feed is immediate, and so is the default lag with it."""
    assert mail_api.settings.resolved_email_activity_lag == timedelta(0)
    emails, to = _emails(engine, mail_api, timedelta(0)), unique_email("nolag")
    key = f"nolag:{to}"
    fault = {"mode": "accept_then_fail", "count": 1, "to": to}
    assert (await mail_api.http.put("/_sandbox/sendgrid/faults", json=fault)).status_code == 204
    with pytest.raises(EmailProviderUnavailable):
        await _send(emails, key, to)
    await _send(emails, key, to)
    assert len(await mail_api.mailbox(to)) == 1


def test_real_sendgrid_is_given_five_minutes() -> None:
    real = Settings.model_validate({"sendgrid_api_key": "SG.x"})
    assert real.resolved_email_activity_lag == timedelta(minutes=5)
    told = Settings.model_validate({"sendgrid_api_key": "SG.x", "email_activity_lag_seconds": 30})
    assert told.resolved_email_activity_lag == timedelta(seconds=30)
