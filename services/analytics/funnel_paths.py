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

Both give, per step k >= 1, ``p{k}``: one row for each person who reached it, with
``t`` the first event that reached it, ``a`` (t, from: ``a[1] - a[2]`` the seconds from
the previous step), ``l`` the latest event that reached it (the start of the next step's
window), and carried on from the entry ``t0``, ``grp`` and, with step windows, ``lp``
(the previous step's ``l``). Step k's people are read from step k-1's (``p{k-1}``), so
they are among them, and ``FunnelRepository`` takes each step's figures from its own
people as for ``ordered``: no join of every entered person with every step. Events are
in (time, id) order: of two at the same instant, the smaller id came first; the entry
comes before every event of its instant.
"""

from __future__ import annotations

from collections.abc import Callable

from services.analytics.funnel_walk import FunnelOrder, WalkRules
from services.analytics.links import PENDING

_WINDOW = "CAST(:window AS interval)"
_NOW = "CAST(:now AS timestamptz)"


def person_share(column: str, shared: bool) -> str:
    """With ``shared``, a condition keeping one share of the people (``:part`` of
    ``:parts``, by a hash of ``column``): a funnel computed in shares side by side, each
    on its own connection, reads each person's events in one share only."""
    return f" AND (hashtext({column}) & 2147483647) % :parts = :part" if shared else ""


def _step_window(k: int) -> str:
    return f"CAST(:sw{k} AS interval)"


def _epoch(column: str) -> str:
    return f"date_part('epoch', {column})"


def _carried(rules: WalkRules, alias: str = "") -> str:
    """The columns a step's rows carry on from the entry: the breakdown value (``grp``)
    and, with step windows, ``lp`` (whether the step's own window is still open)."""
    columns = ("grp", "lp") if rules.step_windows else ("grp",)
    return "".join(f", {alias}{column}" for column in columns)


def _any_carried(rules: WalkRules, alias: str = "") -> str:
    """``_carried`` in a query grouped by person (the same on all of a person's rows)."""
    columns = ("grp", "lp") if rules.step_windows else ("grp",)
    return "".join(f", any_value({alias}{column}) AS {column}" for column in columns)


def _step_events(k: int, rules: WalkRules, people: str) -> str:
    """Step k's events of ``people`` (``person_id``, ``t0``, the carried columns, and
    ``after``: when they first reached step k - 1), each inside its person's window
    from entry."""
    return f"""SELECT c.person_id, c.t0{_carried(rules, "c.")}, e.created_at AS t, e.id
    FROM {people} c JOIN analytics_events e ON e.person_id = c.person_id
    WHERE e.event = :s{k} AND e.created_at >= :start AND e.created_at <= :horizon
      AND e.created_at >= c.after AND e.created_at <= c.t0 + {_WINDOW}"""


def _reached_before(k: int, rules: WalkRules) -> str:
    """The people who reached step k - 1 (step 1: everyone who entered), when they
    first did (``after``), and the columns their step-k rows carry (``lp``: the latest
    event that reached step k - 1)."""
    lp = ", l AS lp" if rules.step_windows else ""
    if k == 1:
        return f"(SELECT person_id, t0, t0 AS after, grp{lp} FROM {_entered(rules)})"
    return f"(SELECT person_id, t0, t AS after, grp{lp} FROM p{k - 1})"


# The event of the person just before ``s`` in (time, id) order, if any: a left join,
# so an event with none (the person's first, which may share its instant with the entry
# and have a smaller id) is kept as the links keep it, with null ``pe``, ``pt``, ``pid``.
_PREVIOUS = """LEFT JOIN LATERAL (
    SELECT x.event, x.created_at AS t, x.id FROM analytics_events x
    WHERE x.person_id = s.person_id AND (x.created_at, x.id) < (s.t, s.id)
    ORDER BY x.created_at DESC, x.id DESC LIMIT 1
  ) p ON true"""


def _probed(k: int, rules: WalkRules) -> str:
    """Step k's events, each with the event of its person just before it (``pe``,
    ``pt``, ``pid``), found by one backward probe of the person index."""
    return f"""SELECT s.*, p.event AS pe, p.t AS pt, p.id AS pid
  FROM ({_step_events(k, rules, _reached_before(k, rules))}) s
  {_PREVIOUS}"""


def _linked(k: int, rules: WalkRules) -> str:
    """The same from the stored links (``links.py``): the step's events of the people
    whose links are current read with their previous event, index-only; those of the
    ``pending`` people (links not yet brought up to date) read through the person index
    (the array keeps the planner from probing everyone's first) and probed."""
    people, carried = _reached_before(k, rules), _carried(rules, "c.")
    return f"""SELECT c.person_id, c.t0{carried}, l.created_at AS t, l.id,
    l.prev_event AS pe, l.prev_at AS pt, l.prev_id AS pid
  FROM {people} c JOIN analytics_event_links l ON l.person_id = c.person_id
  WHERE l.event = :s{k} AND l.created_at >= :start AND l.created_at <= :horizon
    AND l.created_at >= c.after AND l.created_at <= c.t0 + {_WINDOW}
    AND NOT EXISTS (SELECT 1 FROM pending q WHERE q.person_id = c.person_id)
  UNION ALL
  SELECT s.*, p.event AS pe, p.t AS pt, p.id AS pid
  FROM (
    SELECT c.person_id, c.t0{carried}, x.created_at AS t, x.id
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
        source = _linked(k, rules) if linked else _probed(k, rules)
        parts.append(f"c{k} AS MATERIALIZED (\n  {source}\n)")
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
  SELECT c.person_id, c.t0{_carried(rules, "c.")}, c.t, c.id, c.pt AS f FROM c{k} c{joined}
  WHERE c.pe = :s{k - 1} AND {previous}{fits}
)"""
        )
        # Of a person's first events at one instant, the smallest ``from``: the time the
        # gap is counted from.
        parts.append(
            f"""p{k} AS (
  SELECT person_id, any_value(t0) AS t0{_any_carried(rules)}, min(t) AS t,
    min(ARRAY[{_epoch("t")}, {_epoch("f")}]) AS a, max(t) AS l
  FROM v{k} GROUP BY person_id
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
        source = _linked(1, rules)
        latest = f"CASE WHEN {follows} THEN s.pt ELSE greatest(s.t0, p.t) END"
        probe = f"NOT ({follows})"
    else:
        source = _step_events(1, rules, _reached_before(1, rules))
        latest, probe = "greatest(s.t0, p.t)", "true"
    carried = _carried(rules)
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
    parts.append(
        f"v1 AS (SELECT person_id, t0{carried}, t, id FROM c1 WHERE latest >= t - {window})"
    )
    parts.append(
        f"""p1 AS (
  SELECT person_id, t0{carried}, t, l, ARRAY[{_epoch("t")}, {_epoch("f")}] AS a FROM (
    SELECT w.*, CASE WHEN w.t0 >= w.t - {window} THEN w.t0 ELSE (
      SELECT min(x.created_at) FROM analytics_events x
      WHERE x.person_id = w.person_id AND x.event = :s0 AND x.created_at >= w.t - {window}
    ) END AS f
    FROM (
      SELECT person_id, t0{_any_carried(rules)}, min(t) AS t, max(t) AS l
      FROM v1 GROUP BY person_id, t0
    ) w
  ) first_ways
)"""
    )
    for k in range(2, n):
        # One pass in (time, id) order over the events that reached step k-1 and the
        # step's own: the latest of the former so far. (Where the gap is counted from,
        # the earliest of them inside the window, is found for the first event that
        # reached the step only: ``_first_way``.)
        window = _step_window(k)
        parts.append(f"c{k} AS ({_step_events(k, rules, _reached_before(k, rules))})")
        parts.append(
            f"""w{k} AS (
  SELECT person_id, t0{carried}, t, id, step,
    max(t) FILTER (WHERE NOT step) OVER (PARTITION BY person_id ORDER BY t, id
      ROWS UNBOUNDED PRECEDING) AS latest
  FROM (SELECT person_id, t0, NULL AS grp, NULL AS lp, t, id, false AS step FROM v{k - 1}
        UNION ALL SELECT person_id, t0, grp, lp, t, id, true FROM c{k}) x
)"""
        )
        parts.append(
            f"v{k} AS (SELECT person_id, t0{carried}, t, id FROM w{k}"
            f" WHERE step AND latest >= t - {window})"
        )
        parts.append(_first_way(k, rules))
    return parts


def _first_way(k: int, rules: WalkRules) -> str:
    """``ordered`` with step windows, per person and step k >= 2: ``t`` the first event
    that reached it, ``l`` the latest, and ``a`` (t, from): the gap is counted from the
    earliest event that reached step k-1 inside step k's window before ``t`` (those of
    its instant count too). One join per step for each person's first event, where a
    window frame by time recomputed its minimum at every event of the step."""
    return f"""p{k} AS (
  SELECT r.person_id, any_value(r.t0) AS t0{_any_carried(rules, "r.")}, r.t,
    ARRAY[{_epoch("r.t")}, {_epoch("min(b.t)")}] AS a, r.l
  FROM (
    SELECT person_id, any_value(t0) AS t0{_any_carried(rules)}, min(t) AS t, max(t) AS l
    FROM v{k} GROUP BY person_id
  ) r
  JOIN v{k - 1} b ON b.person_id = r.person_id
    AND b.t >= r.t - {_step_window(k)} AND b.t <= r.t
  GROUP BY r.person_id, r.t, r.l
)"""


def _entered(rules: WalkRules) -> str:
    """The entered people as step 2 reads them: with step windows ``entered`` (the entry
    and its ``l``), else ``entry``."""
    return "entered" if rules.step_windows else "entry"


def _latest_entry_step(rules: WalkRules, shared: bool) -> list[str]:
    """With step windows, whether the window to step 2 is still open needs the latest
    step-1 event (``l``) only when it is recent: the people's first step-1 event after
    ``now`` minus that window, the rest of the step-1 events unread. ``l`` stands for the
    latest step-1 event inside the window: it equals it when that is after ``now`` minus
    step 2's window, else it is the entry, also before then (all the figures ask of
    it)."""
    if not rules.step_windows:
        return []
    return [
        f"""recent0 AS (
  SELECT person_id, min(created_at) AS t FROM analytics_events
  WHERE event = :s0 AND created_at > {_NOW} - {_step_window(1)}
    AND created_at >= :start AND created_at <= :horizon{person_share("person_id", shared)}
  GROUP BY person_id
)""",
        f"""entered AS (
  SELECT en.person_id, en.t0, en.grp, CASE WHEN en.t0 > :open_after1 THEN en.t0
    WHEN r0.t <= en.t0 + {_WINDOW} THEN r0.t ELSE en.t0 END AS l
  FROM entry en LEFT JOIN recent0 r0 ON r0.person_id = en.person_id
)""",
    ]


def _people(rules: WalkRules) -> Callable[[int], str]:
    """Step k's people as ``FunnelRepository`` counts them: ``t0``, ``grp``, ``g`` the
    seconds from the previous step, and with step windows ``l`` and ``lp``."""
    windows = ", lp, l" if rules.step_windows else ""

    def people(k: int) -> str:
        if k == 0:
            latest = ", l" if rules.step_windows else ""
            return f"(SELECT t0, grp, NULL AS g{latest} FROM {_entered(rules)})"
        return f"(SELECT t0, grp, a[1] - a[2] AS g{windows} FROM p{k})"

    return people


def walked_chain(
    rules: WalkRules, linked: bool, shared: bool = False
) -> tuple[list[str], Callable[[int], str]]:
    """The CTEs after ``entry``, and each step's people (``_people``). ``linked``: the
    stored links are read (current for the people with no event received after
    ``:linked_since``): ``strict``'s previous events, and step windows' shortcut past the
    probe for step 2. ``shared``: for one share of the people (``person_share``)."""
    assert rules.order is FunnelOrder.STRICT or (
        rules.order is FunnelOrder.ORDERED and rules.step_windows
    )
    strict = rules.order is FunnelOrder.STRICT
    body = _strict(rules, linked) if strict else _ordered_with_windows(rules, linked)
    return [*_latest_entry_step(rules, shared), *body], _people(rules)
