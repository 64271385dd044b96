"""The dashboard's German: one meaning per English text across all screens' files (they are
merged into one table, so a second meaning would silently replace the first), every template
text translated, and a context marker that never shows."""

from __future__ import annotations

import json
import re
from collections import defaultdict

from demandly.web.i18n import LOCALE_DIR, pick_language, translate
from demandly.web.templating import TEMPLATES

# t('Save') or t("Save", n=1); not t('call|' ~ status), whose text is built at run time.
LITERAL_TEXT = re.compile(r"""\bt\(\s*(?:'([^']+)'|"([^"]+)")\s*[,)]""")


def test_no_english_text_has_two_german_meanings() -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    for path in LOCALE_DIR.glob("*.de.json"):
        for english, german in json.loads(path.read_text(encoding="utf-8")).items():
            meanings[english].add(german)
    assert {english: sorted(g) for english, g in meanings.items() if len(g) > 1} == {}


def test_every_literal_text_in_the_templates_has_its_german() -> None:
    known = set()
    for path in LOCALE_DIR.glob("*.de.json"):
        known |= set(json.loads(path.read_text(encoding="utf-8")))
    missing = set()
    for template in TEMPLATES.rglob("*.html"):
        for match in LITERAL_TEXT.finditer(template.read_text(encoding="utf-8")):
            text = match.group(1) or match.group(2)
            if text not in known:
                missing.add(f"{template.relative_to(TEMPLATES)}: {text}")
    assert sorted(missing) == []


def test_a_context_marker_never_shows() -> None:
    assert translate("de", "call|completed") == "beendet"
    assert translate("en", "call|completed") == "completed"
    assert translate("de", "Release") == "An den Bot zurückgeben"


def test_the_browser_language_decides_until_the_user_chooses() -> None:
    assert pick_language(None, None, accept_language="fr-FR,de;q=0.8,en;q=0.5") == "de"
    assert pick_language("en", None, accept_language="de-DE") == "en"
    assert pick_language(None, None, accept_language="") == "en"
