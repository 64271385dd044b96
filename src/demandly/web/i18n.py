"""German and English for the dashboard. English is the source text; German translations
live in ``locale/*.de.json`` (one file per screen, so screens never edit the same file).
A missing translation falls back to the English text."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache(maxsize=1)
def german() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(LOCALE_DIR.glob("*.de.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


class Message(str):
    """A catalogue text already filled in: English as a plain string (logs, the API), and
    ``translate`` shows it in any language from its ``template`` and ``values``."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, **values: object) -> Message:
        message = super().__new__(cls, template.format(**values))
        message.template, message.values = template, values
        return message


def translate(lang: str, text: str, **values: object) -> str:
    """``text`` in ``lang``; ``{name}`` placeholders filled from ``values``. A context before
    a ``|`` tells apart English words with two German meanings (``call|completed`` is a call's
    "beendet", an appointment's ``completed`` is "stattgefunden"); it is never shown."""
    if isinstance(text, Message):
        return translate(lang, text.template, **text.values)
    english = text.partition("|")[2] if "|" in text else text
    translated = german().get(text, english) if lang == "de" else english
    return translated.format(**values) if values else translated


def pick_language(*candidates: str | None, accept_language: str = "") -> str:
    """The first supported language among the candidates (user setting, cookie), else the
    browser's preference, else English."""
    for candidate in candidates:
        if candidate and candidate[:2].lower() in LANGUAGES:
            return candidate[:2].lower()
    for part in _by_quality(accept_language):
        if part[:2] in LANGUAGES:
            return part[:2]
    return DEFAULT_LANGUAGE


def _by_quality(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().lower().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]
