"""Delivering the outbox: subscribers declared in code, each event handled once in effect.

- ``subscribers``: ``DomainEvent``, the ``Handler`` contract and ``Subscriber``.
- ``registry``: the subscribers a worker runs (``build_subscribers``).
- ``handling``: ``handle_once``, a handler run in one transaction with its receipt.
- ``relay``: a relay pass (fan-out, dropped subscribers, head-of-line starts).
- ``delivery``: one delivery's attempt, completion and dead letter.
- ``deliveries`` and ``repository``: their SQL.
"""
