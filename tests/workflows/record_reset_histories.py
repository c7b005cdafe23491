"""Record the histories of reset ``FulfillmentWorkflow`` runs for ``test_replay.py`` (see
``record_histories.py`` for when to record; the same rules hold):

    .venv/bin/python -m tests.workflows.record_reset_histories [NAME ...] [--overwrite]

They run on a dev server of their own: the time-skipping server cannot reset a
workflow. Each history is the reset run's (the history before the reset point, the
reset, and what the run did after it); the scenarios are ``fulfillment_resets.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client

from tests.conftest import start_dev_server
from tests.workflows.fulfillment_resets import reset_to_the_first_task, reset_without_its_updates
from tests.workflows.fulfillment_standins import FulfillmentStandIns
from tests.workflows.record_histories import HISTORIES, recorder_main

RECORDINGS: dict[str, Callable[[Client, FulfillmentStandIns], Awaitable[str]]] = {
    # Since "fulfillment-reset-reads-the-database".
    "fulfillment_reset_to_the_first_task": reset_to_the_first_task,
    "fulfillment_reset_without_its_updates": reset_without_its_updates,
}


async def record(names: list[str], overwrite: bool = False) -> None:
    wanted = [n for n in names if overwrite or not (HISTORIES / f"{n}.json").exists()]
    if not wanted:
        return
    env = await start_dev_server()
    try:
        async with FulfillmentStandIns().running(env.client) as standins:
            for name in wanted:
                workflow_id = await RECORDINGS[name](env.client, standins)
                history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                (HISTORIES / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}")
    finally:
        await env.shutdown()


def main() -> None:
    recorder_main(
        __doc__ or "", RECORDINGS, lambda names, overwrite: record(names, overwrite=overwrite)
    )


if __name__ == "__main__":
    main()
