"""free_port: the ports the suite's parallel workers choose never collide."""

from __future__ import annotations

import os

import pytest

from cli.stack.process import PORT_RANGE, free_port, port_range, port_slice
from tests.parallel import port_slice_of


def test_the_slices_are_disjoint_and_inside_the_range() -> None:
    slices = [set(port_slice(index, 3)) for index in range(3)]
    assert all(len(ports) == len(PORT_RANGE) // 3 for ports in slices)
    assert len(set().union(*slices)) == 3 * (len(PORT_RANGE) // 3)  # no port in two slices
    assert set().union(*slices) <= set(PORT_RANGE)


def test_a_slice_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="slice 2 of 2"):
        port_slice(2, 2)


def test_this_process_chooses_in_its_own_slice() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        assert port_range() == PORT_RANGE
    else:
        count = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        assert port_range() == port_slice(*port_slice_of(worker, count))
    assert all(free_port() in port_range() for _ in range(20))


def test_workers_and_their_replacements_choose_in_disjoint_slices() -> None:
    # Three workers, then replacements of crashed ones (gw3, gw4, gw5, ...).
    chosen = [port_slice_of(f"gw{n}", 3) for n in range(5)]
    assert len(set(chosen)) == 5
    slices = [set(port_slice(*one)) for one in chosen]
    assert len(set().union(*slices)) == sum(len(ports) for ports in slices)
    assert port_slice_of("gw5", 3) == port_slice_of("gw3", 3)  # a spare slice again
