"""The README's *Configuration* table and ``Settings`` name the same variables: a
setting nobody can find, or a documented variable nothing reads, is a defect."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
# Documented because they matter to an operator, read by libraries rather than Settings.
READ_BY_LIBRARIES = {
    # The SQL, Redis and httpx instrumentations and core/client_spans.py read it.
    "OTEL_SEMCONV_STABILITY_OPT_IN",
}


def documented() -> set[str]:
    """The variables the first column of the Configuration section's table names."""
    text = README.read_text()
    start = text.index("\n## Configuration\n")
    section = text[start : text.index("\n## ", start + 1)]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def settings_variables() -> set[str]:
    """The environment variable each ``Settings`` field is read from."""
    found = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        found.add((alias or field.alias or name).upper())
    return found


def test_every_setting_is_documented() -> None:
    assert sorted(settings_variables() - documented()) == []


def test_every_documented_variable_is_read() -> None:
    assert sorted(documented() - settings_variables() - READ_BY_LIBRARIES) == []
