"""An API process's start-up heap is kept out of the collector's full passes
(``settle_heap``), after the garbage start-up left is collected."""

from __future__ import annotations

import gc
import weakref

from fastapi import FastAPI

from cli.serve import settle_heap


class _Node:
    partner: _Node | None = None


def test_settle_heap_collects_start_up_garbage_then_freezes_the_rest() -> None:
    kept = _Node()
    garbage = _Node()
    garbage.partner = garbage  # a cycle: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    settle_heap(FastAPI())
    try:
        assert gone() is None
        assert gc.get_freeze_count() > frozen_before
        assert all(o is not kept for o in gc.get_objects(generation=2))  # frozen, not walked
    finally:
        gc.unfreeze()
