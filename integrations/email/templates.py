"""Email templates (Jinja2): ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html``.

Amounts are written with the ``money`` filter (``{{ total|money(currency) }}``): minor
units read with the currency's own ISO 4217 exponent (``core.money.Money.format``, the
one formatter of money for people), never divided by 100 whatever the currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.money import Money

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def money(amount: int, currency: str) -> str:
    """``1234`` USD as ``12.34 USD``, ``1234`` JPY as ``1234 JPY``, ``1234`` KWD as
    ``1.234 KWD``."""
    return Money(amount, currency).format()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailTemplates:
    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.directory = directory
        self._env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(["html"]),
            # A missing variable is a bug, not an empty string in a customer's inbox.
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._env.filters["money"] = money

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        subject = self._env.get_template(f"{name}.subject.txt").render(context)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._env.get_template(f"{name}.txt").render(context),
            html=self._env.get_template(f"{name}.html").render(context),
        )

    def names(self) -> list[str]:
        found = self.directory.glob("*.subject.txt")
        return sorted(p.name.removesuffix(".subject.txt") for p in found)
