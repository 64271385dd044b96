"""Text normalisation for matching German and English: folding, tokens, crude stems.

Everything that compares visitor text with keywords, FAQ questions or options goes through
``fold`` so both sides are normalised the same way: lowercase, umlauts and accents folded
(``ä`` -> ``a``, ``ß`` -> ``ss``), ``e-mail`` -> ``email``. FAQ matching also unifies the
``ae`` spelling of umlauts and strips plural/inflection endings.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

_STOP_WORDS = """
    a about above after again all also am an and any are as at be because been before being
    but by can could did do does doing for from had has have having he her here hers him his
    how i if in into is it its just me more most my no nor not of off on once only or other our
    ours out over own please same she should so some such than that the their them then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours hi hello hey thanks thank ok okay yes
    aber alle allem allen aller alles als also am an ander andere anderen auch auf aus bei bin
    bis bitte bist da dabei damit dann das dass dein deine dem den denn der des dessen dich die
    dies diese diesem diesen dieser dieses dir doch dort du durch ein eine einem einen einer
    eines einmal er es etwa etwas euch euer eure fur gibt hab habe haben hat hatte hatten hier
    ich ihm ihn ihnen ihr ihre ihrem ihren ihrer im in ins ist ja jede jedem jeden jeder jedes
    jetzt kann kannst kein keine keinem keinen keiner konnen konnt man manche mein meine meinem
    meinen meiner mich mir mit muss mussen nach nein nicht nichts noch nun nur ob oder ohne
    sehr sein seine sich sie sind so soll sollen sollte sonst uber um und uns unser unsere
    unter viel vom von vor war waren warum was weil welche welchem welchen welcher welches wenn
    wer werde werden wie wieder will wir wird wo wollen wurde wurden zu zum zur zwar wann
    wieso weshalb woher wohin gerne gern mal denn eigentlich hallo danke guten tag bzw
"""

# A few words that ask for the same thing; mapped onto one token for FAQ matching.
_SYNONYMS = {
    "kost": "preis",
    "kostet": "preis",
    "koste": "preis",
    "price": "preis",
    "pric": "preis",
    "cost": "preis",
    "teuer": "preis",
    "gebuhr": "preis",
    "fee": "preis",
    "fees": "preis",
    "park": "parkplatz",
    "parken": "parkplatz",
    "parking": "parkplatz",
    "geoffnet": "offnungszeit",
    "offnungszeit": "offnungszeit",
    "open": "offnungszeit",
    "hour": "offnungszeit",
}

_SUFFIXES = (
    "ungen",
    "heiten",
    "keiten",
    "innen",
    "ies",
    "ing",
    "en",
    "er",
    "es",
    "et",
    "ed",
    "e",
    "n",
    "s",
)


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lowercase, ``ß`` -> ``ss``, umlauts and accents without their marks."""
    lowered = text.lower().replace("ß", "ss").replace("e-mail", "email")
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(ch)
    )


def fold_spelling(token: str) -> str:
    """Also unify the ``ae``/``oe``/``ue`` spelling of umlauts (for fuzzy matching only: it
    would turn the name "Doe" into the word "do")."""
    return token.replace("ae", "a").replace("oe", "o").replace("ue", "u")


STOP_WORDS = frozenset(fold(word) for word in _STOP_WORDS.split())
SYNONYMS = {fold_spelling(fold(key)): value for key, value in _SYNONYMS.items()}


def words(text: str) -> list[str]:
    """Folded word tokens (letters and digits)."""
    return _WORD.findall(fold(text))


@lru_cache(maxsize=8192)
def stem(token: str) -> str:
    """Crude de/en stemming: strip one common inflection or plural suffix."""
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 4:
            base = token[: -len(suffix)]
            return base + "y" if suffix == "ies" else base
    return token


@lru_cache(maxsize=4096)
def content_stems(text: str) -> frozenset[str]:
    """The meaningful stems of a text: stop words dropped, synonyms unified."""
    result = set()
    for token in words(text):
        if token in STOP_WORDS or len(token) < 2:
            continue
        spelled = fold_spelling(token)
        stemmed = stem(spelled)
        result.add(SYNONYMS.get(stemmed, SYNONYMS.get(spelled, stemmed)))
    return frozenset(result)


def sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def has_phrase(folded_text: str, phrase: str) -> bool:
    """Whole-word occurrence of an already folded phrase in folded text."""
    return _group_pattern(frozenset((phrase,))).search(folded_text) is not None


def has_any(folded_text: str, group: frozenset[str]) -> bool:
    return _group_pattern(group).search(folded_text) is not None


def remove_all(folded_text: str, group: frozenset[str]) -> str:
    return _group_pattern(group).sub(" ", folded_text)


@lru_cache(maxsize=256)
def _group_pattern(group: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted(group, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9'])(?:{alternatives})(?![a-z0-9'])")


def phrases(*items: str) -> frozenset[str]:
    """Fold keyword phrases once so they compare with folded visitor text."""
    return frozenset(fold(item) for item in items)


_QUESTION_STARTS = phrases(
    "wer", "was", "wann", "wo", "wie", "warum", "wieso", "weshalb", "welche", "welcher",
    "welches", "welchen", "woher", "wohin", "kann", "konnen", "konnte", "konnten", "habt",
    "haben", "hat", "gibt", "gibts", "ist", "sind", "bieten", "bietet", "macht", "machen",
    "nehmen", "nimmt", "darf", "durfen", "muss", "mussen", "wird", "werden", "what", "when",
    "where", "why", "how", "who", "which", "can", "could", "do", "does", "did", "is", "are",
    "will", "would", "should", "may", "have", "has",
)  # fmt: skip


def is_question(text: str) -> bool:
    """A sentence ending in '?' or opening with a question word (verb-first needs 3 words)."""
    for sentence in sentences(text) or [text]:
        if sentence.rstrip().endswith("?"):
            return True
        tokens = words(sentence)
        if len(tokens) >= 3 and tokens[0] in _QUESTION_STARTS:
            return True
    return False
