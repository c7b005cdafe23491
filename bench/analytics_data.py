"""Realistic analytics events for ``shop bench analytics``: N people over the last 90 days,
written with PostgreSQL COPY (``bench.analytics_copy``).

The people (drawn once from ``seed``, the same for every load of a run):
- **members** (40 %) signed up before the window: every event carries their user id;
- **converters** (45 %) browse as guests under an anonymous id and sign up at a time of
  their own (three in four of them inside the window): a ``user_created`` event, an
  ``analytics_identities`` link, and, as the sign-in rewrites them, every event of theirs
  counts for the user (``person_id``) while the guest ones keep only the anonymous id;
- **guests** (15 %) never sign up; they never check out either (orders need an account).
How active a person is follows a Pareto law: a few come back often, most once or twice.

A session happens at a time drawn from the window with a growth trend, busier weekends
and a diurnal curve (UTC), comes from a traffic source (``utm_source`` in the properties,
the referrer column), and walks the funnel: sometimes a ``product_search``, one to eight
``product_view`` s of real catalogue products (popular ones more often, the next view
often in the same category), then ``add_to_cart`` (25 % of sessions), ``checkout_start``
(85 % of those signed in: guests leave there), ``payment_start`` (85 %) and
``order_complete`` (80 %): of 100 sessions with a view, about 25 reach the cart, 12 the
checkout, 10 the payment and 8 an order.
Custom events (``wishlist_add``, ``newsletter_signup``) come now and then. Events arrive
(``received_at``) a moment after they happen, a few of them hours late, within the 24 h
the API accepts, and never after the load's now.

Sessions are independent draws (a person's state depends on the time only, through their
sign-up time), so a load writes exactly the number of events asked for and the same seed
gives the same rows. Orders are not written: the dashboard's sales come from the
``orders`` and ``payments`` tables, which ``shop seed --orders`` fills through the real
checkout; the ``order_complete`` events here carry order ids of no row.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from core.ids import IdPrefix, id_from

COLUMNS = (
    "id",
    "event",
    "user_id",
    "session_id",
    "anonymous_id",
    "person_id",
    "page",
    "referrer",
    "properties",
    "created_at",
    "received_at",
)
EventRow = tuple[
    str, str, str | None, str, str | None, str, str | None, str | None, str, datetime, datetime
]

WINDOW_DAYS = 90
MEMBER_SHARE = 0.40
CONVERTER_SHARE = 0.45
# Converters sign up uniformly over 1.3 windows from its start: 3 in 4 of them inside it.
SIGNUP_SPREAD = 1.3
SEARCH_FIRST = 0.20
ADD_TO_CART = 0.25
SECOND_ITEM = 0.20
CHECKOUT = 0.85
PAYMENT = 0.85
COMPLETE = 0.80
WISHLIST = 0.05
NEWSLETTER = 0.02
SAME_CATEGORY = 0.5
LATE_SHARE = 0.01
SIGNUP_EVENTS_MAX = 0.03
# Sessions per hour of the day (UTC), from a night low to an evening peak.
DIURNAL = (
    *(2, 1.5, 1, 0.8, 0.8, 1.2, 2.5, 4, 5.5, 6, 6.2, 6.5),
    *(7, 6.8, 6.4, 6.2, 6.5, 7.2, 8.2, 9, 9.2, 8, 6, 3.5),
)
WEEKDAY = (1.0, 0.97, 0.95, 0.98, 1.05, 1.2, 1.15)
SOURCES: tuple[tuple[str | None, str | None, float], ...] = (
    (None, None, 35),  # direct
    ("google", "https://www.google.com/", 25),
    ("newsletter", None, 10),
    ("facebook", "https://www.facebook.com/", 8),
    ("instagram", "https://www.instagram.com/", 7),
    ("bing", "https://www.bing.com/", 4),
    (None, "https://news.ycombinator.com/", 3),
    ("tiktok", "https://www.tiktok.com/", 8),
)
SEARCH_WORDS = ("headphones", "wool", "lamp", "running shoes", "desk", "linen", "kettle", "bag")


@dataclass(frozen=True)
class CatalogueProduct:
    id: str
    category_id: str | None
    price: int
    currency: str


@dataclass(frozen=True)
class Person:
    user_id: str
    anonymous_id: str | None
    # None: never signs up (a guest); before the window: a member all along.
    signup_at: datetime | None

    def person_id(self, window_end: datetime) -> str:
        """Whom the person's events count for once every sign-in is linked."""
        if self.signup_at is not None and self.signup_at < window_end:
            return self.user_id
        return f"anon:{self.anonymous_id}"


def _ids(prefix: IdPrefix, rng: random.Random, at: datetime) -> str:
    return id_from(prefix, int(at.timestamp() * 1000), rng.getrandbits(80))


def make_people(count: int, seed: int, window_end: datetime) -> list[Person]:
    """The same people for every load of a run: their kind, ids and sign-up time."""
    rng = random.Random(f"{seed}:people")
    start = window_end - timedelta(days=WINDOW_DAYS)
    people = []
    for _ in range(count):
        kind = rng.random()
        joined = start - timedelta(days=rng.uniform(1, 700))
        user_id = _ids(IdPrefix.USER, rng, joined)
        if kind < MEMBER_SHARE:
            people.append(Person(user_id, None, joined))
            continue
        anonymous_id = f"{rng.getrandbits(128):032x}"
        signup_at = None
        if kind < MEMBER_SHARE + CONVERTER_SHARE:
            signup_at = start + timedelta(days=rng.uniform(0, WINDOW_DAYS * SIGNUP_SPREAD))
        people.append(Person(user_id, anonymous_id, signup_at))
    return people


class EventGenerator:
    """Rows for ``analytics_events`` (in ``COLUMNS`` order) and ``analytics_identities``.

    ``part`` numbers the loads of one run: each draws other sessions from the same people,
    and only part 0 writes their ``user_created`` events (a person signs up once).
    ``stream`` numbers the generators of one part drawn side by side (``copy_parallel``):
    each draws its own sessions, and only stream 0 writes the sign-ups.
    """

    def __init__(
        self,
        catalogue: Sequence[CatalogueProduct],
        *,
        people: int = 100_000,
        seed: int = 2026,
        part: int = 0,
        now: datetime | None = None,
        stream: int = 0,
    ) -> None:
        if not catalogue:
            raise ValueError("the generator needs a catalogue: seed products first")
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.start = self.now - timedelta(days=WINDOW_DAYS)
        self.people = make_people(people, seed, self.now)
        self.part = part
        self.seed = seed
        self.rng = random.Random(
            f"{seed}:events:{part}" if stream == 0 else f"{seed}:events:{part}:{stream}"
        )
        self.catalogue = list(catalogue)
        self._person_ids = [p.person_id(self.now) for p in self.people]
        activity = random.Random(f"{seed}:activity")
        self._person_weights = list(accumulate(activity.paretovariate(1.3) for _ in self.people))
        popularity = random.Random(f"{seed}:popularity")
        self._product_weights = list(
            accumulate(popularity.paretovariate(1.1) for _ in self.catalogue)
        )
        self._by_category: dict[str | None, list[CatalogueProduct]] = {}
        for product in self.catalogue:
            self._by_category.setdefault(product.category_id, []).append(product)
        self._source_weights = list(accumulate(s[2] for s in SOURCES))
        self._hour_weights = list(accumulate(DIURNAL))
        days = [self.start.date() + timedelta(days=d) for d in range(WINDOW_DAYS + 1)]
        self._days = days
        self._day_weights = list(
            accumulate(
                WEEKDAY[day.weekday()] * (1 + 0.5 * n / WINDOW_DAYS) for n, day in enumerate(days)
            )
        )
        signups = [
            n
            for n, p in enumerate(self.people)
            if p.anonymous_id is not None and p.signup_at is not None and p.signup_at < self.now
        ]
        random.Random(f"{seed}:signups").shuffle(signups)
        self._signups = signups if part == 0 and stream == 0 else []

    # -- draws -------------------------------------------------------------------------

    def _pick(self, cumulative: list[float]) -> int:
        return bisect.bisect(cumulative, self.rng.random() * cumulative[-1])

    def _session_start(self) -> datetime:
        while True:
            day = self._days[self._pick(self._day_weights)]
            hour = self._pick(self._hour_weights)
            at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(
                seconds=self.rng.random() * 3600
            )
            if self.start <= at < self.now:
                return at

    def _product(self, previous: CatalogueProduct | None) -> CatalogueProduct:
        if previous is not None and self.rng.random() < SAME_CATEGORY:
            return self.rng.choice(self._by_category[previous.category_id])
        return self.catalogue[self._pick(self._product_weights)]

    def _received(self, at: datetime) -> datetime:
        # Never after the load's now: an event due later has not arrived yet, and one
        # "received" in the future would count as just received until then (the
        # rollup's and the funnel's pending people).
        if self.rng.random() < LATE_SHARE:
            return min(at + timedelta(seconds=self.rng.uniform(60, 20 * 3600)), self.now)
        return min(at + timedelta(milliseconds=self.rng.uniform(5, 900)), self.now)

    # -- rows --------------------------------------------------------------------------

    def rows(self, count: int) -> Iterator[EventRow]:
        """Exactly ``count`` events."""
        # Sign-ups spread over the load (a session holds about four events), at most
        # SIGNUP_EVENTS_MAX of it: a small load writes the events of some of them only.
        del self._signups[int(count * SIGNUP_EVENTS_MAX) :]
        sessions = max(1, count // 4)
        signup_share = len(self._signups) / (sessions + len(self._signups))
        written = 0
        while True:
            if self._signups and self.rng.random() < signup_share:
                session: list[EventRow] = [self._signup(self._signups.pop())]
            else:
                session = self._session()
            for row in session:
                if written == count:
                    return
                yield row
                written += 1
            if written == count:
                return

    def identities(self) -> list[tuple[str, str, datetime]]:
        """(anonymous id, user id, linked at) of every converter who signed up by now."""
        return [
            (p.anonymous_id, p.user_id, p.signup_at)
            for p in self.people
            if p.anonymous_id is not None and p.signup_at is not None and p.signup_at < self.now
        ]

    def _signup(self, index: int) -> EventRow:
        person = self.people[index]
        assert person.signup_at is not None
        at = person.signup_at
        properties = {"registrationMethod": "password", "userAgent": "Mozilla/5.0"}
        return (
            _ids(IdPrefix.ANALYTICS, self.rng, at),
            "user_created",
            person.user_id,
            f"sess_{self.rng.getrandbits(64):016x}",
            person.anonymous_id,
            person.user_id,
            "/account/new",
            None,
            json.dumps(properties),
            at,
            self._received(at),
        )

    def _session(self) -> list[EventRow]:
        rng = self.rng
        index = self._pick(self._person_weights)
        person = self.people[index]
        person_id = self._person_ids[index]
        at = self._session_start()
        signed_in = person.signup_at is not None and person.signup_at <= at
        user_id = person.user_id if signed_in else None
        anonymous_id = person.anonymous_id
        source, referrer, _ = SOURCES[self._pick(self._source_weights)]
        session_id = f"sess_{rng.getrandbits(64):016x}"
        rows: list[EventRow] = []

        def add(
            event: str, page: str, properties: dict[str, object], *, sid: str = session_id
        ) -> None:
            nonlocal at
            if at >= self.now:
                return
            if source is not None:
                properties["utm_source"] = source
            rows.append(
                (
                    _ids(IdPrefix.ANALYTICS, rng, at),
                    event,
                    user_id,
                    sid,
                    anonymous_id,
                    person_id,
                    page,
                    referrer if not rows else None,
                    json.dumps(properties),
                    at,
                    self._received(at),
                )
            )
            at += timedelta(seconds=rng.expovariate(1 / 45))

        if rng.random() < SEARCH_FIRST:
            word = rng.choice(SEARCH_WORDS)
            add(
                "product_search",
                f"/search?q={word}",
                {"search": word, "resultsCount": rng.randint(0, 120)},
            )
        viewed: list[CatalogueProduct] = []
        product: CatalogueProduct | None = None
        views = 1
        while views < 8 and rng.random() < 0.55:
            views += 1
        for _ in range(views):
            product = self._product(product)
            viewed.append(product)
            add(
                "product_view",
                f"/products/{product.id}",
                {
                    "productId": product.id,
                    "categoryId": product.category_id,
                    "price": product.price,
                },
            )
            if rng.random() < WISHLIST:
                add("wishlist_add", f"/products/{product.id}", {"productId": product.id})
        if rng.random() < NEWSLETTER:
            add("newsletter_signup", "/", {"placement": rng.choice(["footer", "popup"])})
        if rng.random() >= ADD_TO_CART:
            return rows
        cart_id = _ids(IdPrefix.CART, rng, at)
        items = rng.sample(viewed, min(len(viewed), 2 if rng.random() < SECOND_ITEM else 1))
        total = 0
        quantity = 0
        currency = items[0].currency
        for item in items:
            units = 1 if rng.random() < 0.85 else rng.randint(2, 3)
            total += item.price * units
            quantity += units
            add(
                "add_to_cart",
                f"/products/{item.id}",
                {"productId": item.id, "quantity": units, "price": item.price},
                sid=cart_id,
            )
        if user_id is None or rng.random() >= CHECKOUT:
            return rows  # guests sign up before they can check out: this one left
        order_id = _ids(IdPrefix.ORDER, rng, at)
        add(
            "checkout_start",
            "/checkout",
            {"orderId": order_id, "total": total, "itemCount": quantity},
            sid=cart_id,
        )
        if rng.random() >= PAYMENT:
            return rows
        add(
            "payment_start",
            "/checkout/payment",
            {"orderId": order_id, "amount": total, "method": "card"},
            sid=cart_id,
        )
        if rng.random() < COMPLETE:
            add(
                "order_complete",
                f"/orders/{order_id}",
                {"orderId": order_id, "total": total, "currency": currency},
                sid=cart_id,
            )
        return rows
