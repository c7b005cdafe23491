"""Each event's funnel breakdown inputs, kept on its row by the database (migration
a7c0de140012): ``source`` by the README's rule (``utm_source``, else the referrer's
host, else ``direct``, lower-cased) and the ``categoryId`` and ``productId`` it names,
whoever writes the event and whenever it arrives; the funnel reads them from there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.ids import IdPrefix, new_id
from models.analytics import AnalyticsEvent
from services.analytics import AnalyticsRecorder, AnalyticsRepository
from services.analytics.funnel import FunnelQuery, FunnelService
from services.analytics.ingest import PendingEvent

T0 = datetime(2001, 4, 2, tzinfo=UTC)
H = timedelta(hours=1)

# The expression the funnel evaluated on each entry event's row before the value was
# stored (services/analytics/funnel_repository.py until a7c0de140012).
READ_TIME_SOURCE = """coalesce(
    nullif(lower(properties->>'utm_source'), ''),
    nullif(lower(substring(referrer from '^[A-Za-z][A-Za-z0-9+.-]*://([^/:?#]+)')), ''),
    'direct')"""

# (properties, referrer) -> the source stored (None: what the database's ``lower`` makes
# of it, which depends on its locale).
CASES: list[tuple[dict[str, Any], str | None, str | None]] = [
    ({"utm_source": "Newsletter"}, "https://www.google.com/", "newsletter"),
    ({"utm_source": ""}, "HTTPS://News.YCombinator.com:443/item?id=1", "news.ycombinator.com"),
    ({}, "android-app://com.example.App/path", "com.example.app"),
    ({}, "https://shop.example/?q=a:b#x", "shop.example"),
    ({}, "//no-scheme.example/", "direct"),
    ({}, "not a url", "direct"),
    ({}, "", "direct"),
    ({"utm_source": "ÉCOLE"}, None, None),
    ({"utm_source": 7}, None, "7"),
    ({"categoryId": "cat_1", "productId": "prod_1"}, None, "direct"),
]


async def _stored(session: AsyncSession, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = await session.exec(
        text(  # type: ignore[call-overload]
            f"SELECT id, source, {READ_TIME_SOURCE}, category_id, properties->>'categoryId', "
            "product_id, properties->>'productId' FROM analytics_events "
            "WHERE id = ANY(CAST(:ids AS text[]))"
        ),
        params={"ids": ids},
    )
    return {row[0]: tuple(row[1:]) for row in rows.all()}


def _pending(person: str, properties: dict[str, Any], referrer: str | None) -> PendingEvent:
    return PendingEvent(
        "product_view",
        anonymous_id=person,
        referrer=referrer,
        properties=dict(properties),
        created_at=T0,
    )


def _same_as_read_time(found: tuple[Any, ...]) -> None:
    source, at_read_time, category, category_then, product, product_then = found
    assert source == at_read_time
    assert (category, product) == (category_then, product_then)


async def test_the_batch_writer_stores_each_source_by_the_rule(db_session: AsyncSession) -> None:
    person = new_id(IdPrefix.ANALYTICS)
    events = [_pending(person, props, referrer) for props, referrer, _ in CASES]
    await AnalyticsRepository(db_session).insert_many([e.row({}) for e in events])
    stored = await _stored(db_session, [e.id for e in events])
    for event, (properties, _, source) in zip(events, CASES, strict=True):
        if source is not None:
            assert stored[event.id][0] == source, (properties, event.referrer)
        _same_as_read_time(stored[event.id])
    assert stored[events[-1].id][2:] == ("cat_1", "cat_1", "prod_1", "prod_1")


async def test_every_writer_gets_the_database_s_value_not_its_own(
    db_session: AsyncSession,
) -> None:
    """An event added in a change's transaction (the ORM), and one whose writer sends a
    value of its own: both hold what the database works out."""
    recorded = await AnalyticsRecorder(enabled=True).track(
        db_session,
        "add_to_cart",
        user_id="user_breakdown",
        properties={"productId": "prod_9", "utm_source": "Mail"},
    )
    assert recorded is not None
    sent = AnalyticsEvent(
        event="product_view",
        person_id="anon:claims",
        referrer="https://ads.example/",
        properties={"categoryId": "cat_7"},
        source="made-up",
        category_id="cat_wrong",
        product_id="prod_wrong",
    )
    db_session.add(sent)
    await db_session.flush()
    stored = await _stored(db_session, [recorded.id, sent.id])
    assert stored[recorded.id][0] == "mail"
    assert stored[recorded.id][2::2] == (None, "prod_9")
    assert stored[sent.id][0] == "ads.example"
    assert stored[sent.id][2::2] == ("cat_7", None)
    for found in stored.values():
        _same_as_read_time(found)


async def test_a_late_or_linked_event_keeps_its_own_value_and_a_changed_one_is_redone(
    db_session: AsyncSession,
) -> None:
    """A late event (happened hours before it arrives) gets its value as any other; a
    sign-in that moves a guest's events to the user keeps theirs; a row whose properties
    or referrer change is worked out again."""
    guest = f"anon:{new_id(IdPrefix.ANALYTICS)}"
    early = AnalyticsEvent(
        event="product_view",
        person_id=guest,
        created_at=T0,
        properties={"utm_source": "Early"},
    )
    db_session.add(early)
    await db_session.flush()
    late = AnalyticsEvent(
        event="product_view",
        person_id=guest,
        created_at=T0 - 5 * H,
        referrer="https://late.example/",
        properties={"productId": "prod_late"},
    )
    db_session.add(late)
    await db_session.flush()
    moved = await AnalyticsRepository(db_session).reassign([guest], "user_linked_breakdown")
    assert moved == 2
    stored = await _stored(db_session, [early.id, late.id])
    assert stored[early.id][0] == "early"
    assert stored[late.id][0] == "late.example"
    assert stored[late.id][4] == "prod_late"

    await db_session.exec(
        text(  # type: ignore[call-overload]
            "UPDATE analytics_events SET properties = CAST(:p AS jsonb), referrer = NULL "
            "WHERE id = :id"
        ),
        params={"p": '{"utm_source": "Fixed", "categoryId": "cat_fixed"}', "id": late.id},
    )
    stored = await _stored(db_session, [late.id])
    assert stored[late.id][0::2] == ("fixed", "cat_fixed", None)
    _same_as_read_time(stored[late.id])


async def test_a_linked_guest_is_grouped_by_the_entry_event_s_stored_source(
    db_session: AsyncSession,
) -> None:
    """A guest's first view (from a referrer) and, after sign-in, a view and a cart as
    the user: linked, they are one person entered at the guest's view."""
    guest = f"anon:{new_id(IdPrefix.ANALYTICS)}"
    user = f"user_{new_id(IdPrefix.ANALYTICS)[3:]}"
    db_session.add_all(
        [
            AnalyticsEvent(
                event="product_view",
                person_id=guest,
                created_at=T0,
                referrer="https://www.bing.com/search",
            ),
            AnalyticsEvent(
                event="product_view",
                person_id=user,
                created_at=T0 + H,
                properties={"utm_source": "newsletter"},
            ),
            AnalyticsEvent(event="add_to_cart", person_id=user, created_at=T0 + 2 * H),
        ]
    )
    await db_session.flush()
    await AnalyticsRepository(db_session).reassign([guest], user)
    now = T0 + 30 * 24 * H
    query = FunnelQuery.parse(
        now=now,
        start=T0,
        end=T0 + 24 * H,
        steps="product_view,add_to_cart",
        window="1d",
        breakdown="source",
    )
    report = await FunnelService(db_session).funnel(query, now)
    assert report.breakdown is not None
    groups = {g.value: [s.count for s in g.steps] for g in report.breakdown.groups}
    assert groups == {"www.bing.com": [1, 1]}
    found = await db_session.exec(
        select(col(AnalyticsEvent.source)).where(col(AnalyticsEvent.person_id) == user)
    )
    assert sorted(s or "" for s in found.all()) == ["direct", "newsletter", "www.bing.com"]
