"""``shop seed``: fill the database with demo data (the seeding itself is ``cli/seed/``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.options import DataDir, console, fail, settings_for
from core.errors import DependencyUnavailable

SEED_PASSWORD_HINT = "seeded customer password 2026"


def seed(
    data_dir: DataDir = None,
    products: Annotated[int, typer.Option(min=0, max=1_000_000)] = 1000,
    users: Annotated[int, typer.Option(min=0, max=100_000)] = 100,
    reviews: Annotated[
        int | None, typer.Option(min=0, help="Default: half the products, at most 5000.")
    ] = None,
    seed_value: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 42,
    orders: Annotated[
        int,
        typer.Option(
            min=0,
            max=100_000,
            help="Orders of the seeded customers, placed through the real checkout and "
            "workflow, then spread over the last 90 days with their analytics, then "
            "shipped, delivered and some returned by the real workflows. Needs the "
            "running stack (`shop dev`).",
        ),
    ] = 0,
) -> None:
    """Fill the database with a realistic, deterministic catalogue, users and reviews,
    and optionally orders (with their funnel analytics) in the past. The numbers are
    targets: each part adds only what the seed's own records lack, so a re-run adds
    nothing and leaves everything else alone."""
    from cli.seed import seed as run_seed

    settings = settings_for(data_dir)
    try:
        report = asyncio.run(
            run_seed(
                settings,
                products=products,
                users=users,
                reviews=reviews,
                seed=seed_value,
                console=console,
                orders=orders,
            )
        )
    except DependencyUnavailable as exc:
        raise fail(exc.detail) from None
    console.print(
        f"categories {report.categories}, products added {report.products_added}, "
        f"users added {report.users_added} (password: {SEED_PASSWORD_HINT}), "
        f"reviews added {report.reviews_added}"
    )
    if report.orders.added:
        placed = report.orders
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(placed.by_status.items()))
        failures = ", ".join(f"{n} {c}" for c, n in sorted(placed.failures.items()))
        console.print(
            f"orders added {placed.added} ({statuses}{'; ' + failures if failures else ''}), "
            "spread over the last 90 days"
        )
    after = report.after_sale
    if after.parcels or after.returns:
        by_status = ", ".join(f"{n} {s}" for s, n in sorted(after.by_status.items()))
        console.print(
            f"after the sale, the orders are {by_status} (a parcel whose carrier steps "
            f"fall after now is still on its way): parcels added {after.parcels}, "
            f"returns added {after.returns}"
        )
    console.print(staff_account_line(report.staff_email, report.staff_password))


def staff_account_line(email: str, password: str | None) -> str:
    """The seed's last line: the staff login it made, or, on a re-run (the password is
    not kept), how to get in anyway."""
    if password:
        return f"staff account: {email} / {password}"
    return (
        f"staff account {email} already existed (its password was printed by the seed "
        "that made it; `shop admin create EMAIL --password PW` makes another)"
    )
