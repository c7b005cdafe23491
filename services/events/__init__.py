"""Delivering the outbox: subscribers declared in code, each event handled once in effect.

- ``subscribers``: ``DomainEvent``, the ``Handler`` contract and ``Subscriber``.
"""
