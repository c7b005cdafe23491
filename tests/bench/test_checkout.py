"""``shop bench checkout`` against the API and workers running in the test loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psutil
import pytest

from bench.bare import (
    LOCAL,
    REMOTE,
    BareResult,
    Shape,
    comparison,
    cpu_comparison,
    run_bare,
    shape_of,
)
from bench.checkout import LONG_POLL, POLL, CheckoutResult, OrderSample, percentile, run
from bench.stack_cost import API, BENCH, TEMPORAL, WORKER, StackProcesses
from temporal.clients.orders import workflow_id
from tests.live import LiveStack


def test_percentiles_and_the_report() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([0.3], 99) == 0.3
    assert percentile([0.1 * n for n in range(1, 101)], 50) == pytest.approx(5.05)
    start = datetime(2026, 11, 25, tzinfo=UTC)
    ok = OrderSample("fulfillment_queued", None, 0.1, 1.0, 0.9, 1.5, start + timedelta(seconds=4))
    declined = OrderSample("failed", "payment_declined", 0.1, None, None, 0.8, start)
    stuck = OrderSample("reserved", None, 0.1, None, None, None, None)
    result = CheckoutResult(3, 2, 1.0, start, [ok, declined, stuck])
    assert result.seconds == 4.0
    assert result.orders_per_second == 0.25
    assert result.failures() == {"payment_declined": 1}
    assert result.unsettled() == {"reserved": 1}
    text = "\n".join(result.lines())
    assert "completed 1" in text
    assert "not settled in time" in text


@pytest.mark.parametrize(("follow", "pause"), [(LONG_POLL, 0.1), (POLL, 0.0)])
async def test_a_small_run_places_and_confirms_every_order(
    live: LiveStack, follow: str, pause: float
) -> None:
    result = await run(
        live.base_url,
        live.settings,
        orders=4,
        concurrency=2,
        poll=0.05,
        follow=follow,
        pause=pause,
    )
    assert result.follow == follow
    assert f"status reads ({follow})" in "\n".join(result.lines())
    assert all(s.status_reads >= 1 for s in result.samples)
    # The API runs in this process here: its CPU is not told apart from the generator's.
    assert result.api_cpu_seconds is not None
    assert len(result.samples) == 4
    assert [s.status for s in result.samples] == ["fulfillment_queued"] * 4
    assert result.failures() == {}
    for sample in result.samples:
        assert sample.to_confirmed is not None
        assert sample.created_to_confirmed is not None
        assert 0 < sample.created_to_confirmed <= sample.to_confirmed
        assert sample.to_settled is not None
        assert sample.to_settled >= sample.to_confirmed
    assert result.orders_per_second > 0


async def test_compare_bare_prints_both_figures_and_their_ratio(live: LiveStack) -> None:
    checkout = await run(live.base_url, live.settings, orders=2, concurrency=2, poll=0.05)
    assert len(checkout.completed) == 2
    shape = await shape_of(live.client, workflow_id(checkout.completed[0].order_id))
    # The happy path: validate, reserve, authorise, confirm, commit, capture, then the
    # confirmation email beside the fulfilment; the database steps are local activities.
    assert (shape.remote, shape.local) == (3, 5)
    assert shape.stages[2] == ("remote",)  # authorise, once the cart is priced and held
    # The Temporal server here is a process of its own; this process stands in for it, so
    # that what the bare run counts for a server's tree and for the bench is read.
    me = psutil.Process()
    bare = await run_bare(
        live.client, shape, workflows=3, concurrency=2, stack=StackProcesses({TEMPORAL: [me]})
    )
    assert len(bare.latencies) == 3
    assert bare.per_second > 0
    assert list(bare.cpu) == [TEMPORAL, BENCH]
    assert bare.cpu[BENCH] > 0
    assert any(line.startswith("  CPU per workflow: Temporal server ") for line in bare.lines())
    assert checkout.bench_cpu_seconds is not None
    assert checkout.bench_cpu_seconds > 0
    text = "\n".join(
        [*checkout.lines(), *bare.lines(), comparison(checkout.orders_per_second, bare)]
    )
    assert f"{checkout.orders_per_second:.1f} orders/s" in text
    assert f"completed 3: {bare.per_second:.1f} workflows/s" in text
    assert "checkout / bare: " in text
    assert f"= {checkout.orders_per_second / bare.per_second:.2f}x" in text


def test_a_shape_describes_its_stages_and_the_ratio_is_ours_over_bare() -> None:
    shape = Shape(((LOCAL,), (REMOTE,), (REMOTE, LOCAL)), source="order-ord_1")
    assert (shape.remote, shape.local) == (2, 2)
    assert shape.describe() == (
        "4 activities (2 remote, 2 local, from order-ord_1): local → remote → remote+local"
    )
    bare = BareResult(10, 2, shape, 2.0, [0.1] * 10)
    assert bare.per_second == 5.0
    assert "= 0.80x" in comparison(4.0, bare)


def test_the_cpu_comparison_is_a_bare_workflows_cpu_over_an_orders() -> None:
    start = datetime(2026, 11, 25, tzinfo=UTC)
    ok = OrderSample("fulfillment_queued", None, 0.1, 1.0, 0.9, 1.5, start + timedelta(seconds=4))
    checkout = CheckoutResult(
        4, 2, 1.0, start, [ok] * 4, stack_cpu={TEMPORAL: 0.8, WORKER: 1.2}, bench_cpu_seconds=0.4
    )
    assert checkout.cpu_per_order_ms() == pytest.approx(600.0)
    assert "  bench process (the clients), not counted above: 100 ms per order" in checkout.lines()
    shape = Shape(((LOCAL,), (REMOTE,)))
    bare = BareResult(10, 2, shape, 2.0, [0.1] * 10, cpu={TEMPORAL: 1.0, BENCH: 0.5})
    assert bare.cpu_per_workflow_ms() == pytest.approx(150.0)
    assert (
        "  CPU per workflow: Temporal server 100 ms, bench process 50 ms (the worker and its "
        "clients); all 150 ms"
    ) in bare.lines()
    [line] = cpu_comparison(checkout.cpu_per_order_ms(), bare)
    assert "600 ms per order" in line
    assert "150 ms per bare workflow" in line
    assert line.endswith("about 0.25x")
    # Nothing to compare when a side was not counted (a stack on another host).
    assert cpu_comparison(None, bare) == []
    assert cpu_comparison(600.0, BareResult(10, 2, shape, 2.0, [0.1] * 10, cpu={BENCH: 0.5})) == []
    assert (
        CheckoutResult(4, 2, 1.0, start, [ok] * 4, stack_cpu={API: 1.0}).cpu_per_order_ms() is None
    )


def test_every_bench_prints_its_configuration_first() -> None:
    from bench.environment import header, sandboxes
    from core.settings import Settings

    settings = Settings(
        shop_api_workers=2,
        shop_dev_workers=3,
        temporal_address="127.0.0.1:7233",
        temporal_ui_url="http://127.0.0.1:8233",
    )
    lines = header(settings, orders=200, concurrency=20)
    assert lines[0].startswith("machine: ")
    assert " cores, " in lines[0]
    assert lines[1] == (
        "stack: 2 API process(es), 3 worker process(es), "
        "Temporal 127.0.0.1:7233 (embedded dev server, SQLite)"
    )
    assert lines[2] == "run: orders=200, concurrency=20"
    assert header(None) == [lines[0]]
    assert sandboxes(settings) == (
        "providers: Stripe sandbox at http://127.0.0.1:3001/_sandbox/stripe; SendGrid "
        "sandbox at http://127.0.0.1:3001/_sandbox/sendgrid (sandboxes run in the API processes)"
    )
