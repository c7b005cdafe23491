"""The order's, its payment's and the held account's reads, run many times an order by
its steps and event handlers, are statements built once (issue #15): a statement built
per call cost its construction and its cache key each time, more of the worker's CPU
than running it. Each read runs the same statement object every call, with its own
values bound (what it returns is the rest of the suite's to check). So do an order's
move, the relay's heads and a stock change, each checked here with two rows in one
session: a value bound to the wrong parameter shows as the wrong row's result. The
inserts of several rows on the order's and the relay's paths (``core.db.insert_rows``)
are compiled once, whatever the number of rows: a multi-VALUES statement was compiled
at every call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.events import EventType
from core.ids import IdPrefix, new_id
from core.outbox import publish
from models.base import utcnow
from models.catalog import ProductCreate
from models.events import EventDelivery, EventSubscription
from models.inventory import StockLevel
from models.orders import OrderEvent, OrderLine, OrderStatus, TimelineAudience
from models.quotes import QuoteLine
from services.catalog.products import ProductService
from services.email_recipients import Recipient, _recipient
from services.events.relay_repository import RelayRepository
from services.events.subscriptions import SubscriptionRepository
from services.inventory import StockService
from services.inventory.stock_repository import StockRepository
from services.order_repository import ChargeTerms, OrderRepository
from services.payments.repository import PaymentRepository
from services.users import Contact, UserRepository
from tests.events.customers import create_customer, create_order
from tests.factories import unique_slug


@contextmanager
def recorded(target: Any, name: str, pick: Callable[..., Any]) -> Iterator[list[Any]]:
    """What ``pick`` takes of each ``name`` event of ``target`` inside the block."""
    seen: list[Any] = []

    def record(*args: Any) -> None:
        seen.append(pick(*args))

    event.listen(target, name, record)
    try:
        yield seen
    finally:
        event.remove(target, name, record)


def executed(engine: AsyncEngine) -> AbstractContextManager[list[Any]]:
    """The statement objects run on ``engine`` inside the block."""
    return recorded(engine.sync_engine, "before_execute", lambda _conn, clause, *_: clause)


def compiled(engine: AsyncEngine) -> AbstractContextManager[list[Any]]:
    """The compiled forms (SQLAlchemy's ``Compiled``) of the statements run on ``engine``
    inside the block: the same object twice is one compilation, taken from the cache."""
    return recorded(engine.sync_engine, "before_cursor_execute", lambda *args: args[4].compiled)


def orm_executions(session: AsyncSession) -> AbstractContextManager[list[Any]]:
    """The statements ``session`` ran through the ORM's execute path inside the block."""
    return recorded(session.sync_session, "do_orm_execute", lambda state: state.statement)


def _line(product_id: str, quantity: int) -> QuoteLine:
    return QuoteLine(
        product_id=product_id,
        name=f"Thing {quantity}",
        slug="thing",
        sku=None,
        quantity=quantity,
        unit_price=100,
        effective_unit_price=90,
        line_discount=10 * quantity,
        line_total=90 * quantity,
    )


async def test_inserts_of_several_rows_are_compiled_once_whatever_their_rows(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    """The relay's fan-out and beat, an order's lines and its stock rows: one row, two,
    and again, each call's own rows written (a row already there left as it was). One
    row and several are two forms (SQLAlchemy compiles an ``executemany`` apart), each
    compiled once: a multi-VALUES statement was compiled at every call."""
    products = []
    for stock in (5, 7):
        product = await ProductService(db_session).create(
            ProductCreate(sku=unique_slug("rows"), name="Stocked thing", price=100)
        )
        await StockService(db_session).adjust(product.id, stock, "initial count")
        products.append(product.id)
    unstocked = await ProductService(db_session).create(
        ProductCreate(sku=unique_slug("rows"), name="Unstocked thing", price=100)
    )
    await db_session.exec(delete(StockLevel).where(col(StockLevel.product_id) == unstocked.id))
    orders = [
        await create_order(db_session, await create_customer(db_session), total=1000)
        for _ in range(2)
    ]
    user_id = new_id(IdPrefix.USER)
    published = [
        await publish(db_session, EventType.USER_CREATED, user_id, {"userId": user_id})
        for _ in range(2)
    ]
    await db_session.flush()
    one, two = unique_slug("rows-a"), unique_slug("rows-b")
    calls: list[Callable[[int], Awaitable[None]]] = [
        lambda i: RelayRepository(db_session).add_deliveries(published[i], [one, two][: i + 1]),
        lambda i: SubscriptionRepository(db_session).beat(
            [(one, "order.created"), (two, "order.created")][: i + 1]
        ),
        lambda i: StockRepository(db_session).ensure_rows([products[0], unstocked.id][: i + 1]),
        lambda i: OrderRepository(db_session).add_lines(
            orders[i].id, [_line(products[0], 1), _line(products[1], 2)][: i + 1]
        ),
    ]
    for call in calls:
        with compiled(engine) as forms:
            for i in (0, 1, 0, 1):
                await call(i)
        assert len(forms) == 4, forms
        assert forms[0] is forms[2], [str(form) for form in forms]
        assert forms[1] is forms[3], [str(form) for form in forms]
    deliveries = await db_session.exec(
        select(EventDelivery.event_id, EventDelivery.subscriber, EventDelivery.seq).where(
            col(EventDelivery.subscriber).in_([one, two])
        )
    )
    assert sorted(deliveries.all()) == sorted(
        [
            (published[0].id, one, published[0].seq),
            (published[1].id, one, published[1].seq),
            (published[1].id, two, published[1].seq),
        ]
    )
    known = await db_session.exec(
        select(EventSubscription.subscriber, EventSubscription.event_type).where(
            col(EventSubscription.subscriber).in_([one, two])
        )
    )
    assert sorted(known.all()) == sorted([(one, "order.created"), (two, "order.created")])
    levels = await db_session.exec(
        select(StockLevel.product_id, StockLevel.on_hand, StockLevel.reserved).where(
            col(StockLevel.product_id).in_([*products, unstocked.id])
        )
    )
    assert sorted(levels.all()) == sorted(
        [(products[0], 5, 0), (products[1], 7, 0), (unstocked.id, 0, 0)]
    )
    lines = await db_session.exec(
        select(
            OrderLine.order_id, OrderLine.product_id, OrderLine.quantity, OrderLine.line_total
        ).where(col(OrderLine.order_id).in_([o.id for o in orders]))
    )
    assert sorted(lines.all()) == sorted(
        [
            (orders[0].id, products[0], 1, 90),
            (orders[1].id, products[0], 1, 90),
            (orders[1].id, products[1], 2, 180),
        ]
        * 2
    )


async def test_a_relay_pass_runs_statements_built_once(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    """The relay's lock, its read of what is not fanned out yet and of batches claimed and
    not started: each pass runs them (several passes an order), each call the same
    statement with its own limit."""
    repository = RelayRepository(db_session)
    await db_session.connection()  # the test's savepoint begun
    reads: list[Callable[[int], Awaitable[object]]] = [
        lambda i: repository.lock_relay(),
        lambda i: repository.undispatched(i + 1),
        lambda i: repository.claimed(i + 1),
    ]
    for read in reads:
        with executed(engine) as runs:
            await read(0)
            await read(1)
        assert len(runs) == 2, runs
        assert runs[0] is runs[1], runs
    user_id = new_id(IdPrefix.USER)
    for _ in range(3):
        await publish(db_session, EventType.USER_CREATED, user_id, {"userId": user_id})
    assert len(await repository.undispatched(2)) == 2
    assert len(await repository.undispatched(3)) == 3


async def test_an_orders_reads_run_statements_built_once(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    first = await create_customer(db_session)
    second = await create_customer(db_session)
    orders = [await create_order(db_session, user, total=1000) for user in (first, second)]
    await db_session.flush()
    repository = OrderRepository(db_session)
    payments = PaymentRepository(db_session)
    users = UserRepository(db_session)
    reads: list[Callable[[int], Awaitable[object]]] = [
        lambda i: repository.get(orders[i].id),
        lambda i: repository.get(orders[i].id, lock=True),
        lambda i: repository.undoing_since(orders[i].id),
        lambda i: repository.lines(orders[i].id),
        lambda i: payments.for_order(orders[i].id),
        lambda i: payments.for_order(orders[i].id, lock=True),
        lambda i: users.hold(orders[i].user_id or ""),
    ]
    for read in reads:
        with executed(engine) as runs:
            await read(0)
            await read(1)
        assert len(runs) == 2, runs
        assert runs[0] is runs[1], runs
    assert await repository.get(orders[1].id) is orders[1]
    assert await users.hold(second.id) is second


async def test_an_orders_column_reads_run_built_once_without_the_orm(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    """The fence of an order's steps, its status, what its authorisation charges, its
    payment's intent, and its email's recipient (the order's address, the account held):
    run several times an order (each payment step reads the intent and the fence; the
    API's long-poll and a payment webhook the status), each read is one
    statement built once on the session's connection, not the ORM's execute path (its
    compile state, loading context and autoflush, the cost left of reads already built
    once). Two orders, one being undone and paid, each read with its own values."""
    customers = [await create_customer(db_session) for _ in range(2)]
    orders = [
        await create_order(db_session, customer, total=total)
        for customer, total in zip(customers, (1000, 2500), strict=True)
    ]
    orders[1].email = "chosen-at-checkout@example.com"
    orders[1].undoing_at = utcnow()
    orders[1].status = OrderStatus.REQUIRES_ACTION
    db_session.add(orders[1])
    await db_session.flush()
    payments = PaymentRepository(db_session)
    await payments.open(orders[1], "stripe", "pi_second")
    repository = OrderRepository(db_session)
    users = UserRepository(db_session)
    reads: list[Callable[[int], Awaitable[object]]] = [
        lambda i: repository.undoing_since(orders[i].id),
        lambda i: repository.status_of(orders[i].id),
        lambda i: repository.charge_terms(orders[i].id),
        lambda i: payments.intent_id(orders[i].id),
        lambda i: repository.addressee(orders[i].id),
        lambda i: users.hold_contact(customers[i].id),
    ]
    answers = []
    for read in reads:
        with executed(engine) as runs, orm_executions(db_session) as through_orm:
            answers.append((await read(0), await read(1)))
        assert through_orm == [], through_orm
        assert len(runs) == 2, runs
        assert runs[0] is runs[1], runs
    undoing, statuses, terms, intents, addressees, contacts = answers
    assert undoing == (None, orders[1].undoing_at)
    assert statuses == (OrderStatus.CONFIRMED, OrderStatus.REQUIRES_ACTION)
    assert terms == tuple(
        ChargeTerms(o.id, o.total, "USD", "pm_card_visa", o.undoing_at) for o in orders
    )
    assert intents == (None, "pi_second")
    assert addressees == tuple((o.user_id, o.email) for o in orders)
    assert contacts == tuple(Contact(email=c.email, name=c.name) for c in customers)
    # The order's confirmation reads its recipient with these two
    with orm_executions(db_session) as through_orm:
        recipient = await _recipient(db_session, "order_confirmation", orders[1].id, None)
    assert through_orm == [], through_orm
    assert recipient == Recipient(email=orders[1].email, name=customers[1].name)


async def test_an_orders_move_runs_one_statement_with_each_orders_values(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    orders = [
        await create_order(db_session, await create_customer(db_session), total=1000)
        for _ in range(2)
    ]
    repository = OrderRepository(db_session)
    moves = [
        (OrderStatus.FULFILLMENT_QUEUED, None, None, "queued", {"n": 0}),
        (OrderStatus.FAILED, "payment_declined", "declined", "failed", {"n": 1}),
    ]
    with executed(engine) as runs:
        for order, (status, code, detail, message, data) in zip(orders, moves, strict=True):
            await repository.move(
                order,
                {
                    "status": status,
                    "failure_code": code,
                    "failure_detail": detail,
                    "next_action_url": None,
                    "updated_at": utcnow(),
                },
                message,
                data,
            )
    assert len(runs) == 2, runs
    assert runs[0] is runs[1], runs
    with executed(engine) as notes:
        for order in orders:
            for key in ("first", "first", "second"):  # the second "first" writes nothing
                await repository.add_event(
                    order.id,
                    OrderStatus(order.status),
                    f"{key} note of {order.id}",
                    {"key": key},
                    audience=TimelineAudience.STAFF,
                    key=key,
                )
            await repository.add_event(
                order.id, OrderStatus(order.status), "unkeyed", {}, audience=TimelineAudience.STAFF
            )
    keyed = [run for i, run in enumerate(notes) if i % 4 != 3]
    assert len(notes) == 8, notes
    assert all(run is keyed[0] for run in keyed), notes
    assert notes[3] is notes[7], notes
    assert notes[3] is not keyed[0], notes
    for order, (status, code, detail, message, data) in zip(orders, moves, strict=True):
        await repository.reread(order)
        assert (order.status, order.failure_code, order.failure_detail) == (status, code, detail)
        entries = (
            await db_session.exec(
                select(OrderEvent)
                .where(OrderEvent.order_id == order.id)
                .order_by(col(OrderEvent.created_at), col(OrderEvent.id))
            )
        ).all()
        assert [(e.status, e.message, e.data, e.key, e.audience) for e in entries] == [
            (status, message, data, None, TimelineAudience.CUSTOMER),
            (status, f"first note of {order.id}", {"key": "first"}, "first", "staff"),
            (status, f"second note of {order.id}", {"key": "second"}, "second", "staff"),
            (status, "unkeyed", {}, None, "staff"),
        ]
        assert entries[0].created_at == order.updated_at


async def test_the_relays_heads_run_one_statement_with_each_callers_pairs(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    """Two subscribers of this test's own, two aggregates: each caller's pairs, its limit,
    and an aggregate's later event held back behind its first."""
    first, second = unique_slug("heads-a"), unique_slug("heads-b")
    repository = RelayRepository(db_session)
    users = [new_id(IdPrefix.USER), new_id(IdPrefix.USER)]
    events = []
    for user_id in (*users, users[0]):
        published = await publish(db_session, EventType.USER_CREATED, user_id, {"userId": user_id})
        await repository.add_deliveries(published, [first, second])
        events.append(published.id)
    created = str(EventType.USER_CREATED)
    with executed(engine) as runs:
        only_first = await repository.heads(10, [(first, created)])
        both = await repository.heads(10, {(first, created), (second, created)})
        one = await repository.heads(1, [(second, created), (second, str(EventType.USER_DELETED))])
        unknown = await repository.heads(10, [(first, str(EventType.USER_DELETED))])
    assert len(runs) == 4, runs
    assert all(run is runs[0] for run in runs), runs
    assert [(d.event_id, d.subscriber) for d in only_first] == [
        (events[0], first),
        (events[1], first),
    ]
    assert [(d.event_id, d.subscriber) for d in both] == [
        (events[0], first),
        (events[0], second),
        (events[1], first),
        (events[1], second),
    ]
    assert [(d.event_id, d.subscriber, d.generation, d.event_type) for d in one] == [
        (events[0], second, 0, created)
    ]
    assert unknown == []


async def test_a_stock_change_runs_one_statement_per_form_with_each_products_values(
    db_session: AsyncSession, engine: AsyncEngine
) -> None:
    products = []
    for stock in (5, 50):
        product = await ProductService(db_session).create(
            ProductCreate(sku=unique_slug("stmt"), name="Stocked thing", price=100)
        )
        await StockService(db_session).adjust(product.id, stock, "initial count")
        products.append(product.id)
    repository = StockRepository(db_session)
    with executed(engine) as runs:
        guarded = [
            await repository.change(products[0], reserved=4, guard_available=4),
            await repository.change(products[1], reserved=6, guard_available=6),
            # 1 left of the first product's 5: refused; 44 of the second's: taken
            await repository.change(products[0], reserved=2, guard_available=2),
            await repository.change(products[1], reserved=44, guard_available=44),
        ]
        # Below the threshold (10): the first was flagged at its count of 5, the second
        # is flagged now, at 0 available
        flagged = [await repository.flag_low(product) for product in products]
        plain = [
            await repository.change(products[0], on_hand=-4, reserved=-4),
            await repository.change(products[1], on_hand=10),
            await repository.change(products[0], on_hand=-2),  # would go below 0: refused
        ]
        # The second back at its threshold: cleared
        cleared = [await repository.flag_low(product) for product in products]
    assert (guarded, plain) == ([True, True, False, True], [True, True, False])
    assert (flagged, cleared) == ([None, 0], [None, None])
    changes = [run for run in runs if "UPDATE stock_levels SET on_hand" in str(run)]
    assert len(changes) == 7, runs
    assert all(run is changes[0] for run in changes[:4]), runs
    assert all(run is changes[4] for run in changes[4:]), runs
    flags = [run for run in runs if "UPDATE stock_levels SET low_stock_alerted" in str(run)]
    assert len(flags) == 4, runs
    assert all(run is flags[0] for run in flags), runs
    levels = await db_session.exec(
        select(
            StockLevel.product_id,
            StockLevel.on_hand,
            StockLevel.reserved,
            StockLevel.low_stock_alerted,
        ).where(col(StockLevel.product_id).in_(products))
    )
    assert sorted(levels.all()) == sorted([(products[0], 1, 0, True), (products[1], 60, 50, False)])
