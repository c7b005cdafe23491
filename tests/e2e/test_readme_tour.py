"""The README's API tour, run as a reader runs it: every ```bash block of the section, in
order, in one bash shell in the repository, against a real ``shop dev``.

``set -euo pipefail`` makes the first step that fails (a ``curl -sf`` answered with an
error, an ``expect`` answered with another status, a JSON field that is not there) end
the script, and the test with it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DevRun, clean_env, running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOUR_START = "## API tour"
TOUR_END = "## Watching work in the Temporal UI"


def tour_blocks(readme: str) -> list[str]:
    """The ```bash blocks between the tour's heading and the next section's, in order
    (a block fenced as anything else, ```console say, is not run)."""
    section = readme.split(f"\n{TOUR_START}\n", 1)[1].split(f"\n{TOUR_END}\n", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def test_tour_blocks_are_the_bash_blocks_of_the_section_only() -> None:
    readme = "\n".join(
        [
            "```bash\nbefore\n```",
            TOUR_START,
            "```bash\none\n```",
            "```console\n$ not run\n```",
            "```bash\ntwo\nlines\n```",
            TOUR_END,
            "```bash\nafter\n```",
        ]
    )
    assert tour_blocks(readme) == ["one\n", "two\nlines\n"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    with running_stack(tmp_path_factory, "tour") as run:
        yield run


def test_the_api_tour_runs_top_to_bottom_and_again(stack: DevRun) -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 7, "the tour's blocks were not found"
    script = "\n".join(["set -euo pipefail", *blocks, "echo; echo 'the tour is over'"])
    # A second reader, on the same data, meets nothing the first one made (names are unique
    # to a run) and a seed that adds nothing.
    for run in ("first", "second"):
        result = subprocess.run(
            ["bash", "-x", "-c", script],
            cwd=ROOT,  # the tour calls .venv/bin/shop
            env=clean_env(API=f"{stack.api}/api", SHOP_DATA_DIR=str(stack.data_dir)),
            capture_output=True,
            text=True,
            timeout=180,
        )
        trace = "\n".join(result.stderr.splitlines()[-40:])
        assert result.returncode == 0, f"the {run} tour failed:\n{result.stdout[-4000:]}\n{trace}"
        assert result.stdout.endswith("the tour is over\n"), f"the {run} tour stopped early"
