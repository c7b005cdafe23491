"""Seeded customers (``customer00001@example.com``… with an address each) and the staff
account, registered through the user service as anyone else is."""

from __future__ import annotations

import random
import secrets

from cli.seed.part import SeedPart
from cli.seed.vocabulary import CITIES, FIRST, LAST
from core.db import transaction
from models.users import AddressCreate, Role, UserCreate
from services.addresses import AddressService
from services.analytics import AnalyticsRecorder
from services.seeding import SeedRecords, seed_email
from services.users import EmailTaken, RegistrationContext, UserService

SEED_PASSWORD = "seeded customer password 2026"
STAFF_EMAIL = "staff@shopweave.example"
SEEDED = RegistrationContext(user_agent="shop seed", method="seed")


class CustomerSeeder(SeedPart):
    async def users(self, rng: random.Random, count: int) -> tuple[int, list[str]]:
        """The customers numbered 1 to ``count``, those missing registered: how many were
        added, and the ids of all ``count``."""
        base = rng.getrandbits(64)
        async with transaction(self.sessions) as session:
            known = await SeedRecords(session).customers()
        missing = [n for n in range(1, count + 1) if seed_email(n) not in known]
        analytics = AnalyticsRecorder(self.settings.analytics_enabled)
        with self.tally("users", len(missing)) as tally:
            for n in missing:
                # Each customer is drawn from its own generator, so customer 42 is the
                # same whichever run added it.
                own = random.Random(f"{base}:{n}")
                first, last = own.choice(FIRST), own.choice(LAST)
                city, state, zip_code, country = own.choice(CITIES)
                street = f"{own.randint(1, 999)} {own.choice(LAST)} Street"
                data = UserCreate(
                    email=seed_email(n), password=SEED_PASSWORD, name=f"{first} {last}"
                )
                address = AddressCreate(
                    name=f"{first} {last}",
                    street=street,
                    city=city,
                    state=state,
                    zip=zip_code,
                    country=country,
                    is_default_shipping=True,
                    is_default_billing=True,
                )
                try:
                    async with transaction(self.sessions) as session:
                        user = await UserService(
                            session,
                            analytics=analytics,
                            password_min_length=self.settings.password_min_length,
                        ).register(data, SEEDED)
                        await AddressService(session).create(user.id, address)
                except EmailTaken:  # registered meanwhile (by another run): not ours to add
                    continue
                known[seed_email(n)] = user.id
                tally.add()
        ids = [known[seed_email(n)] for n in range(1, count + 1) if seed_email(n) in known]
        return tally.added, ids

    async def staff(self) -> tuple[str, str | None]:
        """The staff account and its new password; no password if it existed already."""
        password = secrets.token_urlsafe(18)
        data = UserCreate(email=STAFF_EMAIL, password=password, name="Shop Staff")
        try:
            async with transaction(self.sessions) as session:
                await UserService(
                    session,
                    analytics=AnalyticsRecorder(False),
                    password_min_length=self.settings.password_min_length,
                ).register(data, SEEDED, role=Role.STAFF)
        except EmailTaken:
            return STAFF_EMAIL, None
        return STAFF_EMAIL, password
