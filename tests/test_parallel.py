"""The units of work `make test` shares among its workers (tests/parallel.py)."""

from __future__ import annotations

from tests.parallel import SHOP_DEV_GROUP, work_unit


def test_the_shop_dev_files_are_one_unit_and_every_other_file_its_own() -> None:
    for nodeid in (
        "tests/e2e/test_shop_dev.py::test_a_port_in_use_is_named_and_nothing_starts",
        "tests/e2e/test_readme_tour.py::test_the_api_tour_runs_top_to_bottom_and_again",
        "tests/browser/test_dashboard_page.py::test_a_customer_is_told_the_dashboard_is_for_staff",
    ):
        assert work_unit(nodeid) == SHOP_DEV_GROUP
    assert work_unit("tests/core/test_money.py::test_allocate[7-weights2]") == (
        "tests/core/test_money.py"
    )
    # A parametrised id may hold anything, "::" and "@" included.
    assert work_unit("tests/api/test_x.py::test_y[a::b@c]") == "tests/api/test_x.py"
    assert work_unit("tests/e2e_helpers/test_z.py::test_z") == "tests/e2e_helpers/test_z.py"
