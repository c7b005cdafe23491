"""The funnel's statements, written as SQL text: who entered (``entry``), and every
step's figures in one statement (``figures_statement``, its parameters
``figures_params``), for ``FunnelRepository`` to run.

Only the steps' events in the range plus the window are read, index-only through the
covering ``(event, created_at) INCLUDE (person_id, id, source)`` index (a breakdown by
category reads the entry through its own); each step is one hash join and aggregate over
its own events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.analytics.funnel_paths import person_share, walked_chain
from services.analytics.funnel_walk import FunnelOrder, WalkRules
from services.analytics.ranges import TimeRange


class Breakdown(StrEnum):
    CATEGORY = "category"  # the entry event's categoryId, else its product's category
    SOURCE = "source"  # utm_source, else the referrer's host, else direct


# Each person's entry event (the earliest, then the smallest id) and its breakdown
# inputs, index-only: the row's ``source`` (or ``category_id`` and ``product_id``), kept
# on it by the database at insert (migration a7c0de140012) and included in an
# ``(event, created_at)`` index, taken by the smallest (time, id, ...) in the same pass
# that finds the entry time; no table row is read. ``f3``, ``f4``: the record's fields.
_FIRSTS = """firsts AS (
  SELECT person_id, min(created_at) AS t0, to_jsonb(min(ROW(created_at, id, {columns}))) AS f
  FROM analytics_events
  WHERE event = :s0 AND created_at >= :start AND created_at < :end{{share}}
  GROUP BY person_id
)"""
_ENTRY = {
    None: """entry AS (
  SELECT person_id, min(created_at) AS t0, '' AS grp
  FROM analytics_events
  WHERE event = :s0 AND created_at >= :start AND created_at < :end{share}
  GROUP BY person_id
)""",
    # categoryId's category, else the product's, else categoryId as sent, else none.
    Breakdown.CATEGORY: _FIRSTS.format(columns="category_id, product_id")
    + """,
entry AS (
  SELECT f.person_id, f.t0,
    coalesce(c.slug, pc.slug, f.f->>'f3', 'uncategorized') AS grp
  FROM firsts f
  LEFT JOIN categories c ON c.id = f.f->>'f3'
  LEFT JOIN products p ON p.id = f.f->>'f4'
  LEFT JOIN categories pc ON pc.id = p.category_id
)""",
    # utm_source, else the referrer's host, else direct: ``analytics_event_source``.
    Breakdown.SOURCE: _FIRSTS.format(columns="source")
    + """,
entry AS (SELECT person_id, t0, f->>'f3' AS grp FROM firsts)""",
}
WINDOW = "CAST(:window AS interval)"


def entry(by: Breakdown | None, shared: bool) -> str:
    return _ENTRY[by].replace("{share}", person_share("person_id", shared))


def _gaps(gap: str) -> str:
    """The seconds from the previous step of a step's people, unsorted: the median is
    taken of every share's together (``funnel_repository._GroupFigures``)."""
    return f"array_agg(CAST({gap} AS double precision)) FILTER (WHERE {gap} IS NOT NULL)"


def _step_events(
    k: int, source: str, after: str, *, first_event: bool = False, carried: bool = False
) -> str:
    """The first event of step ``k`` of each person of ``source``, at or after ``after``
    and inside the funnel window from entry (``t0``); with ``first_event``, ``w`` too:
    its (time, id), which the next step's events must come after; with ``carried``,
    ``grp`` and ``tp`` (the previous step's ``t``) carried on from ``source``."""
    first = ", min(ROW(e.created_at, e.id)) AS w" if first_event else ""
    # One row of ``source`` per person: its columns are the same on all the person's
    # rows, grouped by the person alone (fewer keys to hash or sort).
    columns, keys = "c.t0", ", c.t0"
    if carried:
        columns, keys = "any_value(c.t0) AS t0, any_value(c.grp) AS grp, any_value(c.t) AS tp", ""
    return f"""s{k} AS (
  SELECT c.person_id, {columns}, min(e.created_at) AS t{first}
  FROM {source} c JOIN analytics_events e ON e.person_id = c.person_id
  WHERE e.event = :s{k} AND e.created_at >= :start AND e.created_at <= :horizon
    AND e.created_at >= {after} AND e.created_at <= c.t0 + {WINDOW}
  GROUP BY c.person_id{keys}
)"""


def _chain(rules: WalkRules) -> tuple[list[str], str]:
    """``any``: the CTEs, and a relation of every entered person with ``grp``, ``t0``
    and ``t{k}``: when they reached step k (null if they did not)."""
    assert rules.order is FunnelOrder.ANY
    n = len(rules.steps)
    # Steps after the first in any order: step k is reached once steps 1..k were all
    # seen, at the latest of their first times.
    parts = ["c0 AS (SELECT * FROM entry)"]
    for k in range(1, n):
        parts.append(_step_events(k, "entry", "c.t0"))
        reach = f"greatest(c.t{k - 1}, s.t)"
        fits = f" AND {reach} - c.t{k - 1} <= CAST(:sw{k} AS interval)"
        reached = (
            f"CASE WHEN c.t{k - 1} IS NOT NULL AND s.t IS NOT NULL"
            f"{fits if rules.step_windows else ''} THEN {reach} END"
        )
        parts.append(
            f"c{k} AS (SELECT c.*, {reached} AS t{k} "
            f"FROM c{k - 1} c LEFT JOIN s{k} s ON s.person_id = c.person_id)"
        )
    return parts, f"c{n - 1}"


def _ordered(rules: WalkRules, by: Breakdown | None) -> tuple[list[str], str]:
    """``ordered`` without step windows: the CTEs and the figures. Step k's first event
    after step k-1 was first reached, looked for only among the people who reached step
    k-1 (fewer at every step), so the people of step k are among those of step k-1 and
    each step's figures come from its own people (``grp`` and the previous step's time
    carried along): no join of every entered person with every step at the end. Events
    are in (time, id) order, as the walk takes them: a step's event at the same instant
    as the previous step's first counts only with a greater id; the entry comes before
    every event of its instant."""
    n = len(rules.steps)
    parts = ["s0 AS (SELECT person_id, t0, grp, t0 AS t FROM entry)"]
    for k in range(1, n):
        after = "c.t" if k == 1 else "c.t AND ROW(e.created_at, e.id) > c.w"
        parts.append(_step_events(k, f"s{k - 1}", after, first_event=k < n - 1, carried=True))
    # Seconds as the walk counts them: the difference of the two times' epochs.
    since = "date_part('epoch', t) - date_part('epoch', tp)"
    return _by_step_figures(parts, n, by, lambda k: f"s{k}", since)


def _by_step_figures(
    parts: list[str],
    n: int,
    by: Breakdown | None,
    people: Callable[[int], str],
    gap: str,
    *,
    step_windows: bool = False,
) -> tuple[list[str], str]:
    """The figures when the people of step k are among those of step k-1: each step's
    from its own people (``people(k)``: ``t0``, ``grp`` and ``gap``, the seconds from
    the previous step; with ``step_windows`` also ``l``, the latest event that reached
    the step, and ``lp``, the previous step's), counted apart and joined by breakdown
    value (a row or a few), not person by person."""
    head = "GROUPING(grp) = 1 AS total, grp" if by else "true AS total, '' AS grp"
    grouping = " GROUP BY GROUPING SETS ((grp), ())" if by else ""
    parts = list(parts)

    def still_open(latest: str, k: int) -> str:
        # The window from entry, and with step windows step k's own from ``latest``,
        # end after now: compared with now less each window (``open_params``), worked
        # out once, not per person.
        return (
            f"t0 > :open_after AND {latest} > :open_after{k}"
            if step_windows
            else "t0 > :open_after"
        )

    for k in range(n):
        median = _gaps(gap) if k else "NULL"
        # ``o``: of the step's people, those whose window to the next step is open;
        # ``i``: those whose window to this step still was.
        columns = [head, "count(*) AS c", f"{median} AS m"]
        if k < n - 1:
            columns.append(f"count(*) FILTER (WHERE {still_open('l', k + 1)}) AS o")
        if k:
            columns.append(f"count(*) FILTER (WHERE {still_open('lp', k)}) AS i")
        parts.append(f"a{k} AS (SELECT {', '.join(columns)} FROM {people(k)} x{grouping})")
    # Still inside the window at step k: reached step k-1, not step k, with the window
    # to step k still open.
    columns = ["a0.total", "a0.grp", "a0.c AS c0"]
    columns += [f"coalesce(a{k}.c, 0) AS c{k}" for k in range(1, n)]
    columns += [
        f"coalesce(a{k - 1}.o, 0) - coalesce(a{k}.i, 0) AS w{k}, a{k}.m AS m{k}"
        for k in range(1, n)
    ]
    joins = " ".join(
        f"LEFT JOIN a{k} ON a{k}.total = a0.total AND a{k}.grp IS NOT DISTINCT FROM a0.grp"
        for k in range(1, n)
    )
    return parts, f"SELECT {', '.join(columns)} FROM a0 {joins}"


def walked(rules: WalkRules) -> bool:
    """``strict``, or ``ordered`` with step windows: walked (in SQL) event by event."""
    return rules.order is FunnelOrder.STRICT or (
        rules.order is FunnelOrder.ORDERED and rules.step_windows is not None
    )


def _figures_select(rules: WalkRules, by: Breakdown | None, source: str) -> str:
    """``any``'s figures from every entered person's ``t{k}`` (``_chain``)."""
    n = len(rules.steps)
    columns = [
        "GROUPING(grp) = 1 AS total, grp" if by else "true AS total, '' AS grp",
        *(f"count(t{k}) AS c{k}" for k in range(n)),
    ]
    for k in range(1, n):
        # Still open: the window from entry, and the step's own (from when step k-1
        # was reached), end after now; compared with now less each window
        # (``open_params``), worked out once, not per person.
        still_open = "t0 > :open_after"
        if rules.step_windows:
            still_open += f" AND t{k - 1} > :open_after{k}"
        # Seconds as the walk counts them: the difference of the two times' epochs.
        gap = f"date_part('epoch', t{k}) - date_part('epoch', t{k - 1})"
        columns.append(
            f"count(*) FILTER (WHERE t{k - 1} IS NOT NULL AND t{k} IS NULL"
            f" AND {still_open}) AS w{k}"
        )
        columns.append(f"{_gaps(gap)} AS m{k}")
    grouping = " GROUP BY GROUPING SETS ((grp), ())" if by else ""
    return f"SELECT {', '.join(columns)} FROM {source}{grouping}"


def statement_params(rules: WalkRules, time_range: TimeRange) -> dict[str, Any]:
    params: dict[str, Any] = {
        "start": time_range.start,
        "end": time_range.end,
        "horizon": time_range.end + rules.window,
        "window": rules.window,
        "steps": list(rules.steps),
    }
    params |= {f"s{k}": step for k, step in enumerate(rules.steps)}
    if rules.step_windows:
        params |= {f"sw{k}": w for k, w in enumerate(rules.step_windows, start=1)}
    return params


def figures_statement(
    rules: WalkRules, by: Breakdown | None, *, linked: bool = False, shared: bool = False
) -> str:
    """The one statement ``FunnelRepository.figures`` runs (its parameters:
    ``figures_params``); ``linked``: the walked modes read the stored links
    (``links.py``); ``shared``: for one share of the people (``person_share``)."""
    if rules.order is FunnelOrder.ORDERED and not rules.step_windows:
        parts, select = _ordered(rules, by)
    elif walked(rules):
        # Each step's people from the walk's per-person paths (``funnel_paths``), the
        # breakdown value and the previous step's latest event carried along.
        parts, people = walked_chain(rules, linked, shared)
        parts, select = _by_step_figures(
            parts, len(rules.steps), by, people, "g", step_windows=bool(rules.step_windows)
        )
    else:
        parts, source = _chain(rules)
        select = _figures_select(rules, by, source)
    chain = ",\n".join(parts)
    return f"WITH {entry(by, shared)},\n{chain}\n{select}"


def open_params(rules: WalkRules, now: datetime) -> dict[str, datetime]:
    """Whose window is still open: the times after which a way's start (the entry for
    the funnel's window, ``open_after``; the latest way to step k-1 for step k's own,
    ``open_after{k}``) leaves its window ending after ``now``. Durations are exact
    seconds, as the walk counts them."""
    params = {"open_after": now - rules.window}
    if rules.step_windows:
        params |= {f"open_after{k}": now - w for k, w in enumerate(rules.step_windows, start=1)}
    return params


def figures_params(
    rules: WalkRules, time_range: TimeRange, now: datetime, linked_since: datetime | None = None
) -> dict[str, Any]:
    params = statement_params(rules, time_range) | {"now": now} | open_params(rules, now)
    return params | {"linked_since": linked_since} if linked_since else params
