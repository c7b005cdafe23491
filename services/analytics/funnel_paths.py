"""The ``strict`` funnel and funnels with per-step windows, in SQL: the rules of
``funnel_walk`` (the reference, kept for the tests) without reading every event of every
entered person.

What decides a step-k event (k >= 1) is close to it: for ``strict``, the one event of
the person just before it (a step k-1 event that reached step k-1, or for step 2 a
step-1 event after the entry); with step windows, the entry or the latest step-1 event
before it (step 2), or the events that reached step k-1 (later steps: one window pass
over them and the step's own events). So the steps' events after the first are read
index-only through ``(event, created_at) INCLUDE (person_id, id)``, step k only for the
people who reached step k-1 and from when they did, and the event before one is found
by one backward probe of ``(person_id, created_at, id) INCLUDE (event)``. Once the
rollup keeps the links (``links.py``), a step's events are read with the event before
each from ``analytics_event_links`` instead, and only the people with events received
since its watermark (``pending``) are probed. The first
step's events are read for the entry only, and with step windows those of the last
step window before now (who is still inside it).

Both give, per entered person, ``t{k}`` the time of the first event that reached step k
(null if none), ``g{k}`` the seconds from the previous step to it, and ``l{k}`` the
latest event that reached step k (the start of the next step's window).
``FunnelRepository`` turns that into the figures as it does for the other modes
(``strict`` without step windows: from each step's ``p{k}`` alone, as ``ordered``). Events
are in (time, id) order: of two at the same instant, the smaller id came first; the
entry comes before every event of its instant.
"""

from __future__ import annotations

from services.analytics.funnel_walk import FunnelOrder, WalkRules
from services.analytics.links import PENDING

_WINDOW = "CAST(:window AS interval)"
_NOW = "CAST(:now AS timestamptz)"


def _step_window(k: int) -> str:
    return f"CAST(:sw{k} AS interval)"


def _epoch(column: str) -> str:
    return f"date_part('epoch', {column})"


def _step_events(k: int, people: str) -> str:
    """Step k's events of ``people`` (``person_id``, ``t0``, and ``after``: when they
    first reached step k - 1), each inside its person's window from entry."""
    return f"""SELECT c.person_id, c.t0, e.created_at AS t, e.id
    FROM {people} c JOIN analytics_events e ON e.person_id = c.person_id
    WHERE e.event = :s{k} AND e.created_at >= :start AND e.created_at <= :horizon
      AND e.created_at >= c.after AND e.created_at <= c.t0 + {_WINDOW}"""


def _reached_before(k: int) -> str:
    """The people who reached step k - 1 (step 1: everyone who entered), and when
    they first did."""
    if k == 1:
        return "(SELECT person_id, t0, t0 AS after FROM entry)"
    return f"(SELECT person_id, t0, min(t) AS after FROM v{k - 1} GROUP BY person_id, t0)"


_PREVIOUS = """CROSS JOIN LATERAL (
    SELECT x.event, x.created_at AS t, x.id FROM analytics_events x
    WHERE x.person_id = s.person_id AND (x.created_at, x.id) < (s.t, s.id)
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
  ) p"""


def _probed(k: int) -> str:
    """Step k's events, each with the event of its person just before it (``pe``,
    ``pt``, ``pid``), found by one backward probe of the person index."""
    return f"""SELECT s.*, p.event AS pe, p.t AS pt, p.id AS pid
  FROM ({_step_events(k, _reached_before(k))}) s
  {_PREVIOUS}"""


def _linked(k: int) -> str:
    """The same from the stored links (``links.py``): the step's events of the people
    whose links are current read with their previous event, index-only; those of the
    ``pending`` people (links not yet brought up to date) read through the person index
    (the array keeps the planner from probing everyone's first) and probed."""
    people = _reached_before(k)
    return f"""SELECT c.person_id, c.t0, l.created_at AS t, l.id,
    l.prev_event AS pe, l.prev_at AS pt, l.prev_id AS pid
  FROM {people} c JOIN analytics_event_links l ON l.person_id = c.person_id
  WHERE l.event = :s{k} AND l.created_at >= :start AND l.created_at <= :horizon
    AND l.created_at >= c.after AND l.created_at <= c.t0 + {_WINDOW}
    AND NOT EXISTS (SELECT 1 FROM pending q WHERE q.person_id = c.person_id)
  UNION ALL
  SELECT s.*, p.event AS pe, p.t AS pt, p.id AS pid
  FROM (
    SELECT c.person_id, c.t0, x.created_at AS t, x.id
    FROM analytics_events x JOIN {people} c ON c.person_id = x.person_id
    WHERE x.person_id = ANY(ARRAY(SELECT person_id FROM pending)) AND x.event = :s{k}
      AND x.created_at >= :start AND x.created_at <= :horizon
      AND x.created_at >= c.after AND x.created_at <= c.t0 + {_WINDOW}
  ) s
  {_PREVIOUS}"""


def _strict(rules: WalkRules, linked: bool) -> list[str]:
    """A step-k event reaches step k when the event just before it (any event of the
    person) is a step k-1 event that reached step k-1, or for step 2 a step-1 event at
    or after the entry; within step k's window of it. The walk's way of length k."""
    n = len(rules.steps)
    parts = [f"pending AS MATERIALIZED ({PENDING})"] if linked else []
    for k in range(1, n):
        parts.append(f"c{k} AS MATERIALIZED (\n  {_linked(k) if linked else _probed(k)}\n)")
        fits = f" AND c.t - c.pt <= {_step_window(k)}" if rules.step_windows else ""
        if k == 1:
            joined, previous = "", "c.pt >= c.t0"
        else:
            joined = (
                f" JOIN v{k - 1} r ON r.person_id = c.person_id AND r.t = c.pt AND r.id = c.pid"
            )
            previous = "true"
        parts.append(
            f"""v{k} AS (
  SELECT c.person_id, c.t0, c.t, c.id, c.pt AS f FROM c{k} c{joined}
  WHERE c.pe = :s{k - 1} AND {previous}{fits}
)"""
        )
    return parts


def _ordered_with_windows(rules: WalkRules, linked: bool) -> list[str]:
    """A step-k event reaches step k when an event that reached step k-1 came before it
    within step k's window. Step 2: the entry, or the latest step-1 event before it (one
    probe, only when the entry is too far back and, with ``linked``, the event just
    before it is not a step-1 event inside the window); its gap is counted from the
    earliest of those inside the window (the entry, or a probe forwards), for each
    person's first step-2 event only. Later steps: the events that reached the step
    before, joined per person; the gap from the earliest inside the window."""
    n, parts = len(rules.steps), []
    window = _step_window(1)
    if linked:
        # The event just before is itself a step-1 event inside the window: the latest
        # one is at least as late, no probe needed.
        follows = f"s.pe = :s0 AND s.pt >= s.t0 AND s.t - s.pt <= {window}"
        parts.append(f"pending AS MATERIALIZED ({PENDING})")
        source = _linked(1)
        latest = f"CASE WHEN {follows} THEN s.pt ELSE greatest(s.t0, p.t) END"
        probe = f"NOT ({follows})"
    else:
        source, latest, probe = _step_events(1, _reached_before(1)), "greatest(s.t0, p.t)", "true"
    parts.append(
        f"""c1 AS (
  SELECT s.*, {latest} AS latest
  FROM ({source}) s
  LEFT JOIN LATERAL (
    SELECT x.created_at AS t FROM analytics_events x
    WHERE s.t - s.t0 > {window} AND {probe} AND x.person_id = s.person_id AND x.event = :s0
      AND x.created_at >= s.t0 AND (x.created_at, x.id) < (s.t, s.id)
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
  ) p ON true
)""",
    )
    parts.append(f"v1 AS (SELECT person_id, t0, t, id FROM c1 WHERE latest >= t - {window})")
    parts.append(
        f"""p1 AS (
  SELECT person_id, t, l, ARRAY[{_epoch("t")}, {_epoch("f")}] AS a FROM (
    SELECT w.person_id, w.t, w.l, CASE WHEN w.t0 >= w.t - {window} THEN w.t0 ELSE (
      SELECT min(x.created_at) FROM analytics_events x
      WHERE x.person_id = w.person_id AND x.event = :s0 AND x.created_at >= w.t - {window}
    ) END AS f
    FROM (SELECT person_id, t0, min(t) AS t, max(t) AS l FROM v1 GROUP BY person_id, t0) w
  ) first_ways
)"""
    )
    for k in range(2, n):
        # One pass in (time, id) order over the events that reached step k-1 and the
        # step's own: the latest of the former so far. (Where the gap is counted from,
        # the earliest of them inside the window, is found for the first event that
        # reached the step only: ``_first_ways``.)
        window = _step_window(k)
        parts.append(f"c{k} AS ({_step_events(k, _reached_before(k))})")
        parts.append(
            f"""w{k} AS (
  SELECT person_id, t0, t, id, step,
    max(t) FILTER (WHERE NOT step) OVER (PARTITION BY person_id ORDER BY t, id
      ROWS UNBOUNDED PRECEDING) AS latest
  FROM (SELECT person_id, t0, t, id, false AS step FROM v{k - 1}
        UNION ALL SELECT person_id, t0, t, id, true FROM c{k}) x
)"""
        )
        parts.append(
            f"v{k} AS (SELECT person_id, t0, t, id FROM w{k} WHERE step AND latest >= t - {window})"
        )
    return parts


def _first_ways(rules: WalkRules) -> list[str]:
    """``ordered`` with step windows, per person and step k >= 2: ``t`` the first event
    that reached it, ``l`` the latest, and ``a`` (t, from): the gap is counted from the
    earliest event that reached step k-1 inside step k's window before ``t`` (those of
    its instant count too). One join per step for each person's first event, where a
    window frame by time recomputed its minimum at every event of the step."""
    return [
        f"""p{k} AS (
  SELECT r.person_id, r.t, ARRAY[{_epoch("r.t")}, {_epoch("min(b.t)")}] AS a, r.l
  FROM (SELECT person_id, min(t) AS t, max(t) AS l FROM v{k} GROUP BY person_id) r
  JOIN v{k - 1} b ON b.person_id = r.person_id
    AND b.t >= r.t - {_step_window(k)} AND b.t <= r.t
  GROUP BY r.person_id, r.t, r.l
)"""
        for k in range(2, len(rules.steps))
    ]


def _person_paths(rules: WalkRules) -> list[str]:
    """``strict``, per person and step k: ``a`` the (time, from) of the first event that
    reached it (of those at one instant, the smallest ``from``: the time the gap is
    counted from), ``l`` the latest, ``t0`` the entry."""
    return [
        f"""p{k} AS (
  SELECT person_id, any_value(t0) AS t0, min(t) AS t,
    min(ARRAY[{_epoch("t")}, {_epoch("f")}]) AS a, max(t) AS l
  FROM v{k} GROUP BY person_id
)"""
        for k in range(1, len(rules.steps))
    ]


def _latest_entry_step(rules: WalkRules) -> list[str]:
    """With step windows, whether the window to step 2 is still open needs the latest
    step-1 event (``l0``) only when it is recent: the people's first step-1 event after
    ``now`` minus that window, the rest of the step-1 events unread."""
    if not rules.step_windows:
        return []
    return [
        f"""recent0 AS (
  SELECT person_id, min(created_at) AS t FROM analytics_events
  WHERE event = :s0 AND created_at > {_NOW} - {_step_window(1)}
    AND created_at >= :start AND created_at <= :horizon
  GROUP BY person_id
)"""
    ]


def _reached(rules: WalkRules) -> str:
    """The relation ``_figures_select`` reads: ``t{k}`` set when step k was reached,
    ``g{k}`` the seconds from the previous step, ``l{k}`` as above. ``l0`` stands for
    the latest step-1 event inside the window: it equals it when that is after ``now``
    minus step 2's window, else it is the entry, also before then (all the figures ask
    of it)."""
    n = len(rules.steps)
    columns, joins = ["en.grp", "en.t0"], []
    if rules.step_windows:
        columns.append(
            "CASE WHEN en.t0 > :open_after1 THEN en.t0"
            f" WHEN r0.t <= en.t0 + {_WINDOW} THEN r0.t ELSE en.t0 END AS l0"
        )
        joins.append("LEFT JOIN recent0 r0 ON r0.person_id = en.person_id")
    for k in range(1, n):
        columns += [f"p{k}.t AS t{k}", f"p{k}.a[1] - p{k}.a[2] AS g{k}", f"p{k}.l AS l{k}"]
        joins.append(f"LEFT JOIN p{k} ON p{k}.person_id = en.person_id")
    return f"(SELECT {', '.join(columns)} FROM entry en {' '.join(joins)}) AS reached"


def walked_chain(rules: WalkRules, linked: bool) -> tuple[list[str], str]:
    """The CTEs after ``entry``, and the relation of every entered person with ``grp``,
    ``t0``, and per step k after the first ``t{k}`` (null: not reached), ``g{k}`` and
    ``l{k-1}``. ``linked``: the stored links are read (current for the people with no
    event received after ``:linked_since``): ``strict``'s previous events, and step
    windows' shortcut past the probe for step 2."""
    assert rules.order is FunnelOrder.STRICT or (
        rules.order is FunnelOrder.ORDERED and rules.step_windows
    )
    strict = rules.order is FunnelOrder.STRICT
    body = _strict(rules, linked) if strict else _ordered_with_windows(rules, linked)
    paths = _person_paths(rules) if strict else _first_ways(rules)
    return [*_latest_entry_step(rules), *body, *paths], _reached(rules)
