"""The ``strict`` funnel and funnels with per-step windows, walked in SQL: the rules of
``funnel_walk`` (the reference, kept for the tests) as window functions over each entered
person's events in time order, read index-only through ``(person_id, created_at)
INCLUDE (event, id)``.

Both give, per entered person, the time of the first event that reached each step (null
if none), the seconds from the previous step to it, and the latest event that reached
each step (the start of the next step's window). ``FunnelRepository`` turns that into
the figures exactly as it does for the other modes. Events of the same instant are
taken in ``id`` order, as the walk takes them.
"""

from __future__ import annotations

from services.analytics.funnel_walk import FunnelOrder, WalkRules

_WINDOW = "CAST(:window AS interval)"


def _epoch(column: str) -> str:
    return f"date_part('epoch', {column})"


def _step_of(n: int) -> str:
    """The event's step index (0-based), null for another event."""
    whens = " ".join(f"WHEN :s{k} THEN {k}" for k in range(n))
    return f"CASE CAST(e.event AS text) {whens} END"


def _events(rules: WalkRules) -> list[str]:
    """Each entered person's events inside the window from entry: every event for
    ``strict`` (another event breaks a way), the steps' events otherwise. A person is a
    small number here (``pn``), so that ordering their events compares integers."""
    only_steps = ""
    if rules.order is not FunnelOrder.STRICT:
        only_steps = " AND e.event = ANY(CAST(:steps AS text[]))"
    return [
        "entered AS (SELECT *, row_number() OVER () AS pn FROM entry)",
        f"""ev AS (
  SELECT c.pn, e.created_at AS t, e.id, {_step_of(len(rules.steps))} AS k
  FROM entered c JOIN analytics_events e ON e.person_id = c.person_id
  WHERE e.created_at >= :start AND e.created_at <= :horizon
    AND e.created_at >= c.t0 AND e.created_at <= c.t0 + {_WINDOW}{only_steps}
)""",
    ]


def _person_row(n: int, source: str, *, valid: str = "v{k}", source_from: str = "f{k}") -> str:
    """Per person: ``a{k}`` the (time, from) of the first event that reached step k
    (``valid``; of those at that same instant, the smallest ``from``: the time the gap is
    counted from), ``l{k}`` the latest one; ``l0`` the latest step-1 event."""
    columns = ["pn", "max(t) FILTER (WHERE k = 0) AS l0"]
    for k in range(1, n):
        ok, since = valid.format(k=k), source_from.format(k=k)
        columns.append(f"min(ARRAY[{_epoch('t')}, {_epoch(since)}]) FILTER (WHERE {ok}) AS a{k}")
        columns.append(f"max(t) FILTER (WHERE {ok}) AS l{k}")
    return f"SELECT {', '.join(columns)} FROM {source} GROUP BY pn"


def _reached(n: int) -> str:
    """The relation ``_figures_select`` reads: ``t{k}`` set when step k was reached,
    ``g{k}`` the seconds from the previous step, ``l{k}`` as above."""
    columns = ["c.grp", "c.t0", "p.l0"]
    for k in range(1, n):
        columns += [f"p.a{k}[1] AS t{k}", f"p.a{k}[1] - p.a{k}[2] AS g{k}", f"p.l{k}"]
    return f"(SELECT {', '.join(columns)} FROM paths p JOIN entered c USING (pn)) AS reached"


def _strict(rules: WalkRules) -> list[str]:
    """A step-k event reaches step k when the k events just before it are steps
    0 .. k-1 in order (any other event, or a step out of turn, breaks the way), each
    within its step window of the one before."""
    n = len(rules.steps)
    lags = ", ".join(f"lag(k, {j}) OVER w AS k{j}, lag(t, {j}) OVER w AS p{j}" for j in range(1, n))
    conditions: dict[int, str] = {}
    for k in range(1, n):
        # Going back j events from a step-k event: step k - j; its step window links it
        # to the event after it.
        parts = [f"k = {k}"] + [f"k{j} = {k - j}" for j in range(1, k + 1)]
        if rules.step_windows:
            parts += [
                f"{'t' if j == 1 else f'p{j - 1}'} - p{j} <= CAST(:sw{k - j + 1} AS interval)"
                for j in range(1, k + 1)
            ]
        conditions[k] = " AND ".join(parts)
    valid = ", ".join(f"{conditions[k]} AS v{k}, p1 AS f{k}" for k in range(1, n))
    return [
        f"""lagged AS (
  SELECT pn, t, k, {lags}
  FROM ev WINDOW w AS (PARTITION BY pn ORDER BY t, id)
)""",
        f"walked AS (SELECT pn, t, k, {valid} FROM lagged)",
        f"paths AS ({_person_row(n, 'walked')})",
    ]


def _ordered_with_windows(rules: WalkRules) -> list[str]:
    """A step-k event reaches step k when an event that reached step k-1 came before it
    (earlier, or at the same instant with a smaller id), within step k's window: the
    latest such event so far is a running maximum. The gap is counted from the earliest
    one inside the window (a frame by time; those of the same instant count too, since
    the event is then reached at that instant). Pass k reads only the events that
    reached step k-1 and the step-k events, so only the first pass reads every view."""
    n = len(rules.steps)
    parts: list[str] = []
    for k in range(1, n):
        running = f"max(t) FILTER (WHERE k = {k - 1}) OVER (w ROWS UNBOUNDED PRECEDING)"
        if k == 1:
            # Before any step-1 event, the entry itself (this row is then at entry time,
            # ahead of the entry event in id order) is the way to step 2.
            running = f"coalesce({running}, t)"
        earliest = (
            f"min(t) FILTER (WHERE k = {k - 1}) OVER (PARTITION BY pn ORDER BY t "
            f"RANGE BETWEEN CAST(:sw{k} AS interval) PRECEDING AND CURRENT ROW)"
        )
        rows = (
            "(SELECT pn, t, id, k FROM ev WHERE k <= 1)"
            if k == 1
            else f"(SELECT pn, t, id, k FROM r{k - 1} WHERE v UNION ALL "
            f"SELECT pn, t, id, k FROM ev WHERE k = {k})"
        )
        parts.append(
            f"""r{k} AS (
  SELECT pn, t, id, k, k = {k} AND {running} >= t - CAST(:sw{k} AS interval) AS v,
    {earliest} AS f
  FROM {rows} x WINDOW w AS (PARTITION BY pn ORDER BY t, id)
)"""
        )
    reached = " UNION ALL ".join(
        ["SELECT pn, t, k, f FROM r1 WHERE k = 0 OR v"]
        + [f"SELECT pn, t, k, f FROM r{k} WHERE v" for k in range(2, n)]
    )
    parts.append(f"ways AS ({reached})")
    # Every row of ``ways`` after the first step reached its step.
    parts.append(f"paths AS ({_person_row(n, 'ways', valid='k = {k}', source_from='f')})")
    return parts


def walked_chain(rules: WalkRules) -> tuple[list[str], str]:
    """The CTEs after ``entry``, and the relation of every entered person with ``grp``,
    ``t0``, and per step k after the first ``t{k}`` (null: not reached), ``g{k}`` and
    ``l{k-1}``."""
    assert rules.order is FunnelOrder.STRICT or (
        rules.order is FunnelOrder.ORDERED and rules.step_windows
    )
    n = len(rules.steps)
    body = _strict(rules) if rules.order is FunnelOrder.STRICT else _ordered_with_windows(rules)
    return [*_events(rules), *body], _reached(n)
