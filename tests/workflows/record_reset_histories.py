"""Record the histories of reset ``FulfillmentWorkflow`` and ``ReturnWorkflow`` runs for
``test_replay.py`` (see ``record_histories.py`` for when to record; the same rules
hold):

    .venv/bin/python -m tests.workflows.record_reset_histories [NAME ...] [--overwrite]

They run on a dev server of their own: the time-skipping server cannot reset a
workflow. Each history is the reset run's (the history before the reset point, the
reset, and what the run did after it); the scenarios are ``fulfillment_resets.py`` and
``return_resets.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client

from tests.conftest import start_dev_server
from tests.workflows.fulfillment_resets import (
    reset_after_a_released_hold,
    reset_to_the_first_task,
    reset_without_its_updates,
)
from tests.workflows.fulfillment_standins import FulfillmentStandIns
from tests.workflows.record_histories import HISTORIES, recorder_main
from tests.workflows.return_resets import (
    reset_before_the_approval,
    reset_before_the_receipt_while_refunding,
    reset_to_the_first_task_once_closed,
)
from tests.workflows.return_standins import ReturnStandIns

FULFILMENTS: dict[str, Callable[[Client, FulfillmentStandIns], Awaitable[str]]] = {
    # Since "fulfillment-reset-reads-the-database".
    "fulfillment_reset_to_the_first_task": reset_to_the_first_task,
    "fulfillment_reset_without_its_updates": reset_without_its_updates,
    "fulfillment_reset_after_a_released_hold": reset_after_a_released_hold,
}
RETURNS: dict[str, Callable[[Client, ReturnStandIns], Awaitable[str]]] = {
    # Since "return-reset-reads-the-return". (``return_reset_before_the_receipt_while_
    # refunding``, recorded from the receipt's scenario before it, on the path of
    # "return-deadline-takes-stored-status", replays still; today's code records the
    # scenario as below.)
    "return_reset_before_the_approval": reset_before_the_approval,
    "return_reset_before_the_receipt_reads_the_return": reset_before_the_receipt_while_refunding,
    "return_reset_to_the_first_task_once_closed": reset_to_the_first_task_once_closed,
}
RECORDINGS = [*FULFILMENTS, *RETURNS]


async def record(names: list[str], overwrite: bool = False) -> None:
    wanted = [n for n in names if overwrite or not (HISTORIES / f"{n}.json").exists()]
    if not wanted:
        return
    env = await start_dev_server()
    try:
        # One family at a time: both families' stand-ins poll the orders queue.
        async with FulfillmentStandIns().running(env.client) as fulfilments:
            for name in [n for n in wanted if n in FULFILMENTS]:
                await _save(env.client, await FULFILMENTS[name](env.client, fulfilments), name)
        returns = ReturnStandIns()
        async with returns.worker(env.client):
            for name in [n for n in wanted if n in RETURNS]:
                await _save(env.client, await RETURNS[name](env.client, returns), name)
    finally:
        await env.shutdown()


async def _save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}")


def main() -> None:
    recorder_main(
        __doc__ or "", RECORDINGS, lambda names, overwrite: record(names, overwrite=overwrite)
    )


if __name__ == "__main__":
    main()
