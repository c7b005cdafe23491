"""Email templates (Jinja2): ``NAME.subject.txt``, ``NAME.txt`` and ``NAME.html``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


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
