"""What every part of the seed works with: the database, the settings, the console, and a
progress bar that counts what was added."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from core.db import SessionFactory
from core.settings import Settings


@dataclass
class Tally:
    """The number added so far, and the bar that shows it: the summary reports ``added``,
    so the bar and the summary cannot disagree."""

    progress: Progress
    task: TaskID
    added: int = 0

    def add(self, count: int = 1) -> None:
        self.added += count
        self.progress.advance(self.task, count)


class SeedPart:
    def __init__(self, sessions: SessionFactory, settings: Settings, console: Console) -> None:
        self.sessions = sessions
        self.settings = settings
        self.console = console

    @contextmanager
    def tally(self, label: str, total: int) -> Iterator[Tally]:
        """A bar for adding ``total`` records of one kind (the ones missing)."""
        with Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        ) as progress:
            yield Tally(progress, progress.add_task(label, total=total))
