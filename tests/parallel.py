"""How `make test` shares the suite among its pytest-xdist workers (``--dist loadgroup``).

A test file is one unit of work, run whole on one worker (its module fixtures, a live
stack say, start once), except the files that start `shop dev` stacks (marked ``e2e``,
all under ``tests/e2e`` and ``tests/browser``): together they are one unit, run one after
another on one worker, so that the run never has several stacks (each its own
PostgreSQL, Redis, Temporal, API and workers) starting at once on a small machine, while
the other workers take the other files.

The unit is told by the test's path, not by an ``xdist_group`` marker: pytest-xdist
names a marked test's group by appending ``@group`` to ``item._nodeid``, which pytest 9.2
no longer reads (the node id is ``item._id``), so the marker grouped nothing and every
worker started `shop dev` stacks at once. The ``e2e`` marker and the paths are checked
against each other at collection (``order_shop_dev_first``).
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

# The unit of work of the files that start `shop dev` stacks.
SHOP_DEV_GROUP = "shop-dev"
# Where those files live (node ids are relative to the repository).
SHOP_DEV_DIRS = ("tests/e2e/", "tests/browser/")


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: the `shop dev` group, or its file."""
    if nodeid.startswith(SHOP_DEV_DIRS):
        return SHOP_DEV_GROUP
    return nodeid.split("::", 1)[0]


def order_shop_dev_first(items: list[pytest.Item]) -> None:
    """Put the ``e2e`` tests first: they are the longest unit of work, and the workers
    should end the run sharing short files, not waiting on one long one (`make test`
    keeps this order with --no-loadscope-reorder). A test marked ``e2e`` outside the
    `shop dev` directories, or one in them unmarked, is refused: the scheduler, which
    sees node ids only, would put it in the wrong unit."""
    for item in items:
        marked = item.get_closest_marker("e2e") is not None
        if marked != (work_unit(item.nodeid) == SHOP_DEV_GROUP):
            where = " or ".join(SHOP_DEV_DIRS)
            raise pytest.UsageError(
                f"{item.nodeid}: tests that start `shop dev` are marked e2e and live under "
                f"{where}, and only they"
            )
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


class FileOrGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """Units of work: the `shop dev` files together, every other file on its own."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


# Slices of the port range kept for workers pytest-xdist starts in place of crashed ones
# (gw3, gw4, ... of three): they run the crashed worker's remaining files, beside live
# workers whose slices they must not share.
REPLACEMENT_SLICES = 2


def port_slice_of(worker_id: str, workers: int) -> tuple[int, int]:
    """``(index, count)`` of the port slice (``cli.stack.process.port_slice``) the worker
    ``gwN`` of ``workers`` chooses ports from. Without slices for replacements, a crashed
    worker's replacement failed at start ("slice 3 of 3 does not exist"), which ended the
    whole run as an internal error without naming the test that crashed."""
    index = int(worker_id.removeprefix("gw"))
    if index >= workers:
        index = workers + (index - workers) % REPLACEMENT_SLICES
    return index, workers + REPLACEMENT_SLICES
