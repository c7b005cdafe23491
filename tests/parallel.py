"""How `make test` shares the suite among its pytest-xdist workers (``--dist loadgroup``).

A test file is one unit of work, run whole on one worker (its module fixtures, a live
stack say, start once), except the files that start `shop dev` stacks (marked ``e2e``):
together they are one unit, run one after another on one worker, so that the run never
has several stacks (each its own PostgreSQL, Redis, Temporal, API and workers) starting
at once on a small machine, while the other workers take the other files.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

# The xdist group of the files that start `shop dev` stacks.
SHOP_DEV_GROUP = "shop-dev"


def group_shop_dev_files(items: list[pytest.Item]) -> None:
    """Put the ``e2e`` tests in one group, and first: they are the longest unit of work,
    and the workers should end the run sharing short files, not waiting on one long one
    (`make test` keeps this order with --no-loadscope-reorder)."""
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.xdist_group(SHOP_DEV_GROUP))
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


class FileOrGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """Units of work: a test's xdist group if it has one (xdist adds ``@group`` to its
    node id under ``--dist loadgroup``), otherwise its file."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.rfind("@") > nodeid.rfind("]"):
            return nodeid.rsplit("@", 1)[1]
        return nodeid.split("::", 1)[0]
