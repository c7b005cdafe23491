"""A real browser for the page tests: Playwright for Python driving the system's Chromium.

Playwright's own browser download cannot run on our machines, so the tests launch
Debian's ``chromium`` package (``apt-get install -y chromium``; ``.ci/run`` installs it).
Without it they fail, saying so: a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

INSTALL_HINT = (
    "Chromium is not installed: the browser tests drive the system's Chromium "
    "(Playwright's own browser download is not used). Install it with "
    "`apt-get install -y chromium` (with sudo if you are not root), then run "
    "`.venv/bin/python -m pytest tests/browser` again."
)
# The viewport the dashboard is laid out for.
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> Path:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    path = Path(found)
    if not path.is_file():
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(executable))
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class WatchedPage:
    """A page whose console errors and uncaught exceptions are kept for the test to check."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def _page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.message}")


@pytest.fixture
async def watched_page(browser: Browser) -> AsyncIterator[WatchedPage]:
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = WatchedPage(await context.new_page())
    page.watch()
    try:
        yield page
    finally:
        await context.close()
